//! The embedded model's pages, given back after load (`classifier::pages`): they leave the
//! resident set, and the bytes read back unchanged from the binary.

use sha2::{Digest, Sha256};
use tagbeez::classifier::{embedded, Classifier};

/// The fraction of `bytes`' whole pages mapped into this process right now, from the
/// "present" bit (63) of /proc/self/pagemap, which an unprivileged process may read.
fn present_fraction(bytes: &[u8]) -> f64 {
    use std::io::{Read, Seek, SeekFrom};
    let page = 4096;
    let first = (bytes.as_ptr() as usize).div_ceil(page);
    let last = (bytes.as_ptr() as usize + bytes.len()) / page;
    let mut pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
    pagemap.seek(SeekFrom::Start(first as u64 * 8)).unwrap();
    let mut entries = vec![0u8; (last - first) * 8];
    pagemap.read_exact(&mut entries).unwrap();
    let present = entries
        .chunks_exact(8)
        .filter(|e| u64::from_le_bytes(<[u8; 8]>::try_from(*e).unwrap()) >> 63 == 1)
        .count();
    present as f64 / (last - first) as f64
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn released_model_pages_leave_the_resident_set_and_read_back_unchanged() {
    let files = embedded::model_files();
    let labels: serde_json::Value = serde_json::from_slice(files.labels_json).unwrap();
    let expected = labels["onnx_sha256"].as_str().unwrap();
    // Loading reads every byte of the file, so all its pages are mapped.
    let classifier = Classifier::load(files).unwrap();
    assert!(
        present_fraction(files.onnx) > 0.99,
        "the load read the file"
    );

    let released = embedded::release_onnx().expect("the embedded file is a clean file mapping");
    assert!(
        released > files.onnx.len() - 2 * 4096,
        "released {released} bytes"
    );
    assert_eq!(present_fraction(files.onnx), 0.0, "pages still mapped");

    // The classifier holds its own copy of the weights and does not touch the file again.
    let before = classifier
        .classify_batch(&["any discount on the blue one?"])
        .unwrap();
    assert_eq!(
        present_fraction(files.onnx),
        0.0,
        "classifying read the file"
    );

    // Read again, the bytes come back from the binary as they were, and load as they did.
    assert_eq!(sha256_hex(files.onnx), expected);
    let again = Classifier::load(embedded::model_files()).unwrap();
    let after = again
        .classify_batch(&["any discount on the blue one?"])
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn heap_bytes_are_refused_and_left_intact() {
    let heap: &'static [u8] = Vec::leak(vec![7u8; 64 * 4096]);
    let err = tagbeez::classifier::pages::release(heap).unwrap_err();
    assert!(
        err.to_string()
            .contains("not in one read-only mapping of a file"),
        "{err}"
    );
    assert!(heap.iter().all(|&b| b == 7));
}
