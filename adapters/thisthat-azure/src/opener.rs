//! opener
