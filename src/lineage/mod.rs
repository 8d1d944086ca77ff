//! Lineage beyond the store: OpenLineage events (DESIGN.md section 8).

pub mod openlineage;
