//! Helpers for Cornetta's cross-part tests: run the real `cornetta` binary on a loopback
//! port with its own data directory, and talk to it over HTTP.
