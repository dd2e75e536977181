//! Frame tests
