//! No-panic fuzzing of every reader with proptest: random bytes, and the real samples and
//! fixtures mutated by deleting, duplicating and inserting bytes and syntax fragments.
//! `PROPTEST_CASES` sets the number of cases (default 64 to keep `cargo test` fast).

use proptest::prelude::*;

use super::*;

const SEEDS: &[&str] = &[
    include_str!("testdata/threatfox_export_json_recent_20260724_subset.json"),
    include_str!("testdata/threatfox_export_json_recent_20250519_subset.json"),
    include_str!("testdata/threatfox_api_search_ioc_ipport_hit.json"),
    include_str!("testdata/seed-threatfox-mirai.txt"),
    "# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\",\"fk_malware\",\"malware_alias\",\"malware_printable\",\"last_seen_utc\",\"confidence_level\",\"is_compromised\",\"reference\",\"tags\",\"anonymous\",\"reporter\"\n\"2026-07-21 05:35:20\", \"1854731\", \"157.20.182.81:425\", \"ip:port\", \"botnet_cc\", \"win.tofsee\", \"Gheg\", \"Tofsee\", \"\", \"75\", \"False\", \"\", \"a,b\", \"0\", \"abuse_ch\"\n",
    "{\"type\": \"bundle\", \"objects\": [{\"type\": \"indicator\", \"id\": \"indicator--1\", \"pattern_type\": \"stix\", \"pattern\": \"[network-traffic:dst_ref.value = '1.2.3.4' AND network-traffic:dst_port = 80] OR [file:hashes.'SHA-256' = 'aa'] OR [domain-name:resolves_to_refs[*].value IN ('1.1.1.1')]\"}]}",
    "{\"Event\": {\"Orgc\": {\"name\": \"x\"}, \"Attribute\": [{\"type\": \"ip-dst|port\", \"value\": \"1.2.3.4|80\", \"to_ids\": true}], \"Object\": [{\"Attribute\": [{\"type\": \"domain|ip\", \"value\": \"a.com|1.1.1.1\"}]}]}}",
    "# hosts\n127.0.0.1 localhost\n0.0.0.0 evil.com other.net\n",
    "1.2.3.4\n216[.]128[.]153[.]60:51515\nhxxps://evil[.]com/x#y\n10.0.0.0/8\n[::1]:53\n",
];

/// Fragments that steer mutations into interesting syntax.
const FRAGMENTS: &[&str] = &[
    "[.]",
    "(dot)",
    "hxxp",
    "[://]",
    "\"",
    "'",
    "\\",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ",",
    ":",
    "|",
    "#",
    "\n",
    "\r\n",
    " ",
    "\", \"",
    "dynamic([",
    "null",
    "true",
    "0",
    "-1",
    "1e999",
    "99999999999999999999",
    "\u{1b}[31m",
    "é",
    "\u{feff}",
    "ip:port",
    "::",
    "/33",
    "%",
    "| Type | Value |",
    "AND",
    "OR",
    "NOT",
    "IN",
    "[*]",
    "t'",
    "..",
    "-",
    "_",
    "xn--",
];

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Duplicate(usize, usize),
    Insert(usize, usize),
    Byte(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..64).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), 0usize..256).prop_map(|(at, len)| Edit::Duplicate(at, len)),
        (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(at, f)| Edit::Insert(at, f)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Byte(at, b)),
    ]
}

fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for edit in edits {
        let len = bytes.len().max(1);
        match *edit {
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Edit::Duplicate(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    let copy = bytes[at..end].to_vec();
                    bytes.splice(at..at, copy);
                }
            }
            Edit::Insert(at, f) => {
                let at = (at % len).min(bytes.len());
                bytes.splice(at..at, FRAGMENTS[f].bytes());
            }
            Edit::Byte(at, b) => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = b;
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs every reader; only a panic fails. Rejects must name the source and render.
fn run_all(text: &str) {
    type Reader = fn(&str, &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>>;
    let readers: [Reader; 8] = [
        read_threatfox_json,
        read_threatfox_api,
        read_threatfox_csv,
        read_advisory,
        read_plain,
        read_hosts,
        read_stix,
        read_misp,
    ];
    for reader in readers {
        check(reader(text, "fuzz"));
    }
    check(read_indicators(text, "fuzz", Format::Auto));
    let _ = detect_format(text);
    for line in text.lines().take(50) {
        let _ = parse_any_value(&refang(line));
    }
}

fn check(result: Result<Vec<ParsedIndicator>, Vec<Reject>>) {
    match result {
        Ok(found) => {
            for indicator in found {
                let _ = indicator.value.to_string();
                assert_eq!(&*indicator.meta.source, "fuzz");
            }
        }
        Err(rejects) => {
            assert!(!rejects.is_empty());
            for reject in rejects {
                let shown = reject.to_string();
                assert!(shown.starts_with("fuzz"), "{shown}");
                assert!(!shown.contains('\n'), "{shown}");
            }
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        run_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_samples_never_panic(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec(edit(), 1..12),
    ) {
        run_all(&apply(SEEDS[seed], &edits));
    }

    #[test]
    fn fragment_soup_never_panics(parts in proptest::collection::vec(0..FRAGMENTS.len(), 0..64)) {
        let text: String = parts.iter().map(|&i| FRAGMENTS[i]).collect();
        run_all(&text);
    }
}

#[test]
fn huge_inputs_stay_linear() {
    // Pathological shapes that would be quadratic in a naive reader.
    let started = std::time::Instant::now();
    let many_brackets = format!("[{}]", "a[".repeat(30_000));
    let pattern = serde_json::json!({"type": "bundle", "objects": [
        {"type": "indicator", "pattern_type": "stix", "pattern": many_brackets}
    ]})
    .to_string();
    let _ = read_stix(&pattern, "fuzz");
    let dynamic = "dynamic(".repeat(50_000);
    let _ = read_advisory(&dynamic, "fuzz");
    let bad_lines = "300.1.1.1\n".repeat(50_000);
    let rejects = read_plain(&bad_lines, "fuzz").unwrap_err();
    assert_eq!(rejects.len(), model::MAX_REJECTS + 1);
    let deep = "[".repeat(100_000);
    let _ = read_indicators(&deep, "fuzz", Format::Auto);
    let quotes = "\"".repeat(100_000);
    let _ = read_threatfox_csv(&quotes, "fuzz");
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}
