//! The read-only gate: exactly one SELECT, WITH, EXPLAIN, SHOW or DESCRIBE statement. DDL, DML,
//! COPY and SET are refused before planning; planning runs with DDL, DML and statements off
//! as a second line.

use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;

use super::QueryError;

/// Accepts exactly one read-only statement.
pub fn gate(sql: &str) -> Result<(), QueryError> {
    let stmts = DFParser::parse_sql(sql).map_err(|e| QueryError::Sql(e.to_string()))?;
    if stmts.len() != 1 {
        return Err(QueryError::Refused(format!(
            "exactly one statement per query ({} given)",
            stmts.len()
        )));
    }
    let ok = match &stmts[0] {
        DFStatement::Statement(s) => {
            matches!(
                s.as_ref(),
                Statement::Query(_)
                    | Statement::ShowTables { .. }
                    | Statement::ShowColumns { .. }
                    | Statement::ExplainTable { .. }
            ) || matches!(s.as_ref(), Statement::Explain { statement, analyze: false, .. } if matches!(statement.as_ref(), Statement::Query(_)))
        }
        DFStatement::Explain(e) => matches!(
            e.statement.as_ref(),
            DFStatement::Statement(s) if matches!(s.as_ref(), Statement::Query(_))
        ),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(QueryError::Refused(
            "only SELECT, WITH, EXPLAIN, SHOW and DESCRIBE are allowed; the lake is read-only"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_allows_reads_only() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
            "DESCRIBE cases",
        ] {
            assert!(gate(ok).is_ok(), "{ok}: {:?}", gate(ok));
        }
        for bad in [
            "CREATE TABLE x (a INT)",
            "DROP TABLE cases",
            "INSERT INTO cases VALUES (1)",
            "DELETE FROM cases",
            "UPDATE cases SET age = 1",
            "COPY cases TO '/tmp/x.csv'",
            "SET datafusion.execution.batch_size = 1",
            "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
            "SELECT 1; DROP TABLE cases",
        ] {
            assert!(
                matches!(
                    gate(bad),
                    Err(QueryError::Refused(_)) | Err(QueryError::Sql(_))
                ),
                "{bad}: {:?}",
                gate(bad)
            );
        }
    }
}
