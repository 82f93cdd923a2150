//! A viewer's sequence numbers (the fan-out's rewriter) under any mix of source
//! restarts, reordering, duplicates and NACKs: no number is given to two packets (two
//! payloads under one SRTP index) and a NACKed number maps back to its own packet.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cardea::fuzzing::viewer_numbers(data);
});
