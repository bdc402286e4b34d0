//! Prints a dataset's row count and its first rows as JSON lines, read back
//! from the Parquet files `tributary serve` wrote.
//!
//! ```text
//! cargo run --example show_dataset -- DATA_DIR/datasets/orders 5
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn parquet_files(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // As pyarrow and DuckDB do: `_staging` (batches not yet committed) and dot-paths are not the dataset.
        if path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with(['_', '.'])) {
            continue;
        }
        if path.is_dir() {
            parquet_files(&path, found)?;
        } else if path.extension().is_some_and(|ext| ext == "parquet") {
            found.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: show_dataset DATASET_DIR [ROWS]")?);
    let wanted: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5);
    let mut files = Vec::new();
    parquet_files(&dir, &mut files)?;
    files.sort();
    let mut total = 0usize;
    let mut shown = Vec::new();
    for path in &files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?.build()?;
        for batch in reader {
            let batch = batch?;
            total += batch.num_rows();
            let take = wanted.saturating_sub(shown.len()).min(batch.num_rows());
            if take > 0 {
                let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
                writer.write(&batch.slice(0, take))?;
                writer.finish()?;
                shown.extend(String::from_utf8(writer.into_inner())?.lines().map(str::to_owned));
            }
        }
    }
    println!("{total} rows in {} Parquet files under {}", files.len(), dir.display());
    for line in shown {
        println!("  {line}");
    }
    Ok(())
}
