//! `ships.online_since_ms`: when the ship was heard from after a silence longer than the
//! offline threshold (the start of its current stay online), and `ships.resync`: where its
//! resync from the master's state stands, as its last heartbeat said. `broadcasts` indexed by
//! CSN and by time: the fleet view reads when each ship's first missing commit was made, and
//! the admin page counts commits per minute. `conflicts.field_bases`: the CSN the ship had
//! taken in for each held field that differs from the conflict's base version, so the admin
//! page shows each field's value at the ship's own base.

use sea_orm_migration::prelude::*;

use sea_orm_migration::schema::{big_integer_null, text_null};

use crate::{Step, index};

crate::migration![
    Step::Column("ships", big_integer_null("online_since_ms")),
    Step::Column("ships", text_null("resync")),
    Step::Column("conflicts", text_null("field_bases")),
    index("broadcasts_by_csn", "broadcasts", &["csn"]),
    index("broadcasts_by_time", "broadcasts", &["created_at_ms"]),
];
