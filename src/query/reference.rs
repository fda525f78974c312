//! Reference tables registered in every session beside the lake's: the organisation registry
//! and the population table (SDG 16.2.2 rates).

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;

use super::QueryError;
use crate::config::Registry;
use crate::schema::Catalog;

pub(super) fn population_table(catalog: &Catalog) -> Result<MemTable, QueryError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("country", DataType::Utf8, false),
        Field::new("year", DataType::Int32, false),
        Field::new("population", DataType::Int64, false),
        Field::new("source", DataType::Utf8, false),
    ]));
    let p = &catalog.population;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|x| x.country.as_str()),
            )),
            Arc::new(datafusion::arrow::array::Int32Array::from_iter_values(
                p.iter().map(|x| x.year),
            )),
            Arc::new(datafusion::arrow::array::Int64Array::from_iter_values(
                p.iter().map(|x| x.population),
            )),
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|x| x.source.as_str()),
            )),
        ],
    )
    .map_err(|e| QueryError::Sql(e.to_string()))?;
    MemTable::try_new(schema, vec![vec![batch]]).map_err(|e| QueryError::Sql(e.to_string()))
}

pub(super) fn organisations_table(registry: &Registry) -> Result<MemTable, QueryError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("org_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, true),
    ]));
    let o = &registry.organisations;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                o.iter().map(|x| x.org_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                o.iter().map(|x| x.name.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                o.iter().map(|x| x.org_type.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                o.iter().map(|x| x.country.as_str()),
            )),
            Arc::new(StringArray::from_iter(
                o.iter().map(|x| x.region.as_deref()),
            )),
        ],
    )
    .map_err(|e| QueryError::Sql(e.to_string()))?;
    MemTable::try_new(schema, vec![vec![batch]]).map_err(|e| QueryError::Sql(e.to_string()))
}
