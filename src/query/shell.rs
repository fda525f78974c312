//! The interactive query shell of `tip query` on a terminal.

use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;

use super::{OutputFormat, render};

/// Runs one statement for the shell (the application core's query, with its audit record).
pub type Run<'a> = dyn Fn(String) -> BoxFuture<'a, Result<Vec<RecordBatch>, String>> + 'a;

/// The query shell: statements end with `;` and may span lines; `\history` lists earlier
/// statements (kept in `history`, one per line, across sessions), `\N` runs statement N again,
/// `\q` quits. Errors are printed and the shell goes on.
pub async fn shell(
    run: &Run<'_>,
    format: OutputFormat,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
    history: Option<&std::path::Path>,
) -> std::io::Result<()> {
    let mut past: Vec<String> = history
        .and_then(|h| std::fs::read_to_string(h).ok())
        .map(|t| {
            t.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    writeln!(
        err,
        "tip query shell: end statements with ';', \\history lists earlier ones, \\q quits"
    )?;
    let mut buf = String::new();
    loop {
        write!(err, "{}", if buf.is_empty() { "tip> " } else { "...> " })?;
        err.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let cmd = line.trim();
        if buf.is_empty() && cmd.starts_with('\\') {
            match cmd {
                "\\q" => break,
                "\\history" => {
                    for (i, h) in past.iter().enumerate() {
                        writeln!(out, "{:>4}  {h}", i + 1)?;
                    }
                }
                _ => match cmd[1..]
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| past.get(n.wrapping_sub(1)))
                    .cloned()
                {
                    Some(sql) => run_in_shell(run, format, &sql, out, err).await?,
                    None => writeln!(err, "unknown command {cmd}")?,
                },
            }
            continue;
        }
        buf.push_str(&line);
        if cmd.ends_with(';') {
            let sql = buf.split_whitespace().collect::<Vec<_>>().join(" ");
            let sql = sql.trim_end_matches(';').trim().to_string();
            buf.clear();
            if sql.is_empty() {
                continue;
            }
            past.push(sql.clone());
            if let Some(h) = history {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(h)?;
                std::io::Write::write_all(&mut f, format!("{sql}\n").as_bytes())?;
            }
            run_in_shell(run, format, &sql, out, err).await?;
        }
    }
    Ok(())
}

async fn run_in_shell(
    run: &Run<'_>,
    format: OutputFormat,
    sql: &str,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match run(sql.to_string()).await {
        Ok(b) => match render(&b, format) {
            Ok(bytes) => out.write_all(&bytes),
            Err(e) => writeln!(err, "{e}"),
        },
        Err(e) => writeln!(err, "{e}"),
    }
}
