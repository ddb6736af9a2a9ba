//! The catalog's rules: what a product and a user are, and what is valid. No AWS, no HTTP.

mod error;
pub mod product;
pub mod user;

pub use error::DomainError;
pub use product::{
    Incoming, NewProduct, PAGE_DEFAULT, PAGE_MAX, Page, PageRequest, Price, Product, ProductId,
};
pub use user::{Actor, Email, Invitation, Password, Role, Signup, User, UserId};
