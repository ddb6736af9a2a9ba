//! Storage behind the ports: in memory (local runs, tests) and DynamoDB (Lambda).

pub mod dynamodb;
pub mod memory;
