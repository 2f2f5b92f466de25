//! `outbox.unseen`: what of the master's state a ship change claims not to have taken in
//! (JSON of `offline_sync_model::Unseen`; null when it took in everything up to its base).

use sea_orm_migration::prelude::*;

use sea_orm_migration::schema::text_null;

use crate::Step;

crate::migration![Step::Column("outbox", text_null("unseen")),];
