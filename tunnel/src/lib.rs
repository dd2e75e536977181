//! quictun library
