//! The read-only gate: exactly one SELECT, WITH, EXPLAIN, SHOW or DESCRIBE statement. DDL, DML,
//! COPY and SET are refused before planning; planning runs with DDL, DML and statements off
//! as a second line.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::{Limits, QueryError};

/// Refuses, before it is parsed, a statement longer than `query.max_sql_tokens` tokens or
/// nested deeper than `query.max_sql_depth` parentheses: the parser and the planner recurse
/// on its structure (`1+1+...+1` with thousands of terms, thousands of `OR`s, huge `IN`
/// lists). The tokenizer itself does not recurse.
pub fn check_size(sql: &str, limits: &Limits) -> Result<(), QueryError> {
    if sql.len() > limits.max_sql_bytes() {
        return Err(QueryError::Limit(format!(
            "the statement is longer than {} tokens (query.max_sql_tokens)",
            limits.max_sql_tokens
        )));
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| QueryError::Sql(e.to_string()))?;
    let (mut count, mut depth, mut deepest) = (0usize, 0usize, 0usize);
    for t in &tokens {
        match t {
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            _ => {}
        }
        count += 1;
    }
    if count > limits.max_sql_tokens {
        return Err(QueryError::Limit(format!(
            "the statement has {count} tokens, more than {} (query.max_sql_tokens)",
            limits.max_sql_tokens
        )));
    }
    if deepest > limits.max_sql_depth {
        return Err(QueryError::Limit(format!(
            "the statement nests {deepest} parentheses deep, more than {} (query.max_sql_depth)",
            limits.max_sql_depth
        )));
    }
    Ok(())
}

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

/// The last line, on the plan itself: whatever the door and the protocol path (a prepared
/// statement, an extended query, a statement a client rewrote), a plan that would define,
/// change or copy data, set an option or manage a transaction or a prepared statement is
/// refused — subqueries included, and under EXPLAIN too. EXPLAIN ANALYZE of a read runs it
/// (with the same limits) to show where time went and which files were pruned; analysts and
/// the pruning test use it.
pub fn read_only_plan(plan: &LogicalPlan) -> Result<(), QueryError> {
    let mut found = None;
    plan.apply_with_subqueries(|p| {
        found = match p {
            LogicalPlan::Ddl(_) => Some("definitions (DDL)"),
            LogicalPlan::Dml(_) => Some("changes (DML)"),
            LogicalPlan::Copy(_) => Some("COPY"),
            LogicalPlan::Statement(_) => Some("SET, transactions and PREPARE/EXECUTE"),
            LogicalPlan::Extension(_) => Some("extension plans"),
            _ => None,
        };
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })
    .map_err(|e| QueryError::Sql(e.to_string()))?;
    match found {
        Some(what) => Err(QueryError::Refused(format!(
            "{what}: the lake is read-only; only SELECT, WITH, EXPLAIN, SHOW and DESCRIBE are allowed"
        ))),
        None => Ok(()),
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

    /// The plan-level check stands on its own: plans made with every statement kind allowed
    /// (as a protocol path that skipped the text gate would make them) are refused unless
    /// they only read.
    #[tokio::test]
    async fn plans_that_change_copy_or_set_are_refused() {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1)").await.unwrap();
        for ok in [
            "SELECT * FROM t",
            "SELECT * FROM t WHERE column1 IN (SELECT column1 FROM t)",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE SELECT * FROM t",
        ] {
            let plan = ctx.state().create_logical_plan(ok).await.unwrap();
            assert!(read_only_plan(&plan).is_ok(), "{ok}");
        }
        for bad in [
            "INSERT INTO t VALUES (2)",
            "CREATE TABLE u AS SELECT * FROM t",
            "CREATE VIEW v AS SELECT 1",
            "DROP TABLE t",
            "COPY t TO '/tmp/tip-never-written.csv'",
            "SET datafusion.execution.batch_size = 1",
            "EXPLAIN INSERT INTO t VALUES (3)",
            "EXPLAIN ANALYZE INSERT INTO t VALUES (4)",
        ] {
            let plan = ctx.state().create_logical_plan(bad).await.unwrap();
            assert!(
                matches!(read_only_plan(&plan), Err(QueryError::Refused(_))),
                "{bad}"
            );
        }
    }
}
