//! Readers for indicator feeds and files (work in progress).
