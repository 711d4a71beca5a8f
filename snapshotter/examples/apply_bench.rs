//! Measure the layer applier: `apply_bench LAYER MEDIA_TYPE DEST` applies LAYER into
//! the empty directory DEST and prints the time and uncompressed throughput. Compare
//! with `tar -xf LAYER -C DEST2` on the same disk.

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, layer, media_type, dest] = args.as_slice() else {
        return Err("usage: apply_bench LAYER MEDIA_TYPE DEST".into());
    };
    let start = Instant::now();
    let r = BufReader::with_capacity(1 << 20, File::open(layer)?);
    let applied = berth_snapshotter::apply::apply_layer(dest.as_ref(), r, media_type)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "applied {} ({} bytes uncompressed) in {secs:.3}s: {:.1} MB/s",
        applied.diff_id,
        applied.size,
        applied.size as f64 / secs / 1e6
    );
    Ok(())
}
