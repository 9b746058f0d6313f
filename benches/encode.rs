//! Hot loops of dump and load, on sysbench-shaped rows (id, k, c CHAR(120), pad CHAR(60)):
//! - dump: encoding rows as multi-row INSERT text and as CSV;
//! - load: cutting a file into chunks at row boundaries, and transcoding INSERT text and CSV
//!   into the `LOAD DATA` stream sent to the target.
//!
//! Run: `cargo bench --bench encode`. Throughput is reported per input byte.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferry_dumper::encode::{CsvEncoder, RowEncoder, SqlEncoder, SqlOptions};
use ferry_dumper::schema::{ColumnInfo, TableInfo, ValueKind};
use ferry_loader::split::{self, Syntax};
use ferry_loader::transcode::{
    self, ChunkError, Method, Step, StepSink, TableShape, TranscodeOptions,
};
use ferry_shared::csv::CsvDialect;
use std::hint::black_box;

const ROWS: usize = 20_000;

fn table() -> TableInfo {
    let col = |name: &str, data_type: &str, kind| ColumnInfo {
        name: name.into(),
        data_type: data_type.into(),
        column_type: data_type.into(),
        nullable: false,
        generated: false,
        charset: None,
        collation: None,
        kind,
    };
    TableInfo {
        db: "sbtest".into(),
        name: "sbtest1".into(),
        columns: vec![
            col("id", "int", ValueKind::Number),
            col("k", "int", ValueKind::Number),
            col("c", "char", ValueKind::Text),
            col("pad", "char", ValueKind::Text),
        ],
        chunk_key: vec!["id".into()],
        est_rows: ROWS as u64,
        est_bytes: 0,
    }
}

/// Rows as the server sends them (text protocol), owned.
fn rows() -> Vec<[Vec<u8>; 4]> {
    (0..ROWS)
        .map(|i| {
            let c: String = (0..11)
                .map(|g| format!("{:011}", (i * 7919 + g * 104_729) % 100_000_000_000))
                .collect::<Vec<_>>()
                .join("-");
            [
                (i + 1).to_string().into_bytes(),
                ((i * 31) % 100_000).to_string().into_bytes(),
                c.into_bytes(),
                format!(
                    "{:011}-{:011}-{:011}-{:011}-{:011}",
                    i,
                    i + 1,
                    i + 2,
                    i + 3,
                    i + 4
                )
                .into_bytes(),
            ]
        })
        .collect()
}

fn encode(enc: &mut RowEncoder, rows: &[[Vec<u8>; 4]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.len() * 220);
    enc.begin_file(&mut out);
    for r in rows {
        let vals: [Option<&[u8]>; 4] = [Some(&r[0]), Some(&r[1]), Some(&r[2]), Some(&r[3])];
        enc.encode_row(&vals, &mut out);
    }
    enc.end_file(&mut out);
    out
}

fn sql_encoder() -> RowEncoder {
    RowEncoder::Sql(SqlEncoder::new(
        &table(),
        SqlOptions {
            statement_size: 1_000_000,
            complete_insert: false,
            escape_backslash: true,
        },
    ))
}

fn csv_dialect() -> CsvDialect {
    CsvDialect {
        separator: ",".into(),
        delimiter: "\"".into(),
        null_value: "\\N".into(),
        header: false,
        escape_backslash: true,
        line_terminator: "\n".into(),
    }
}

/// Takes transcoded steps as a worker would, a piece at a time, and drops them.
fn discard(step: Step) -> Result<(), ChunkError> {
    black_box(step);
    Ok(())
}

fn shape() -> TableShape {
    TableShape {
        qualified: "`sbtest`.`sbtest1`".into(),
        columns: vec!["id".into(), "k".into(), "c".into(), "pad".into()],
        bit_columns: Vec::new(),
        typed_text_columns: Vec::new(),
    }
}

fn options() -> TranscodeOptions {
    TranscodeOptions {
        method: Method::LoadData,
        charset: "binary".into(),
        validate_utf8: false,
        insert_batch: 1 << 20,
        insert_verb: "INSERT",
        sql_backslash: true,
        max_statement: 1 << 30,
    }
}

fn benches(c: &mut Criterion) {
    let rows = rows();
    let sql = encode(&mut sql_encoder(), &rows);
    let csv = encode(
        &mut RowEncoder::Csv(CsvEncoder::new(&table(), csv_dialect())),
        &rows,
    );

    let mut g = c.benchmark_group("dump");
    g.throughput(Throughput::Bytes(sql.len() as u64));
    g.bench_function("sql_encode", |b| {
        b.iter(|| encode(&mut sql_encoder(), black_box(&rows)))
    });
    g.throughput(Throughput::Bytes(csv.len() as u64));
    g.bench_function("csv_encode", |b| {
        b.iter(|| {
            encode(
                &mut RowEncoder::Csv(CsvEncoder::new(&table(), csv_dialect())),
                black_box(&rows),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("load");
    g.throughput(Throughput::Bytes(sql.len() as u64));
    g.bench_function("split_sql", |b| {
        b.iter(|| {
            let mut n = 0;
            split::split(
                black_box(&sql[..]),
                Syntax::Sql { backslash: true },
                256 << 10,
                "bench",
                |_| {
                    n += 1;
                    Ok(())
                },
            )
            .map(|_| n)
        })
    });
    g.bench_function("transcode_sql", |b| {
        b.iter(|| {
            let mut send = discard;
            let mut sink = StepSink {
                piece: 1 << 20,
                send: &mut send,
            };
            transcode::sql_chunk(black_box(&sql), &[], &shape(), &options(), &mut sink)
        })
    });
    let format = csv_dialect();
    g.throughput(Throughput::Bytes(csv.len() as u64));
    g.bench_function("split_csv", |b| {
        let syntax = Syntax::csv(&format);
        b.iter(|| {
            split::split(
                black_box(&csv[..]),
                syntax.clone(),
                256 << 10,
                "bench",
                |_| Ok(()),
            )
            .map(|o| o.chunks)
        })
    });
    g.bench_function("transcode_csv", |b| {
        b.iter(|| {
            let mut send = discard;
            let mut sink = StepSink {
                piece: 1 << 20,
                send: &mut send,
            };
            transcode::csv_chunk(
                black_box(&csv),
                &format,
                &shape().columns,
                &shape(),
                &options(),
                &mut sink,
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = all;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(all);
