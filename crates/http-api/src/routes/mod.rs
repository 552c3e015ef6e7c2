//! Route handlers: each parses its input, calls one service method and maps
//! the result.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod break_glass;
pub mod consents;
pub mod health;
pub mod mfa;
pub mod passwords;
pub mod records;
pub mod sessions;
pub mod users;

use serde::Deserialize;
use utoipa::IntoParams;

use crate::problem::Problem;

/// `limit` and `offset` query parameters of offset-paged listings.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, a whole number.
    limit: Option<String>,
    /// Items to skip, a whole number.
    offset: Option<String>,
}

/// Parses the paging parameters; the services check their ranges.
pub(crate) fn parse_paging(params: &PageParams) -> Result<(Option<u32>, Option<u64>), Problem> {
    let limit = params
        .limit
        .as_deref()
        .map(|text| {
            text.parse::<u32>().map_err(|_| {
                Problem::invalid_field("limit", "use a whole number of items per page")
            })
        })
        .transpose()?;
    let offset = params
        .offset
        .as_deref()
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                Problem::invalid_field("offset", "use a whole number of items to skip")
            })
        })
        .transpose()?;
    Ok((limit, offset))
}
