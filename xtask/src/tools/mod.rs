//! One module per external tool: each owns its argv and the parsing of its output.

pub mod buildx;
pub mod copa;
pub mod registry;
pub mod trivy;
