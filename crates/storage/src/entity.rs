//! sea-orm entities of the tables created by `offline-sync-migrations`. Private to this crate:
//! nothing above storage sees them.

// The sea-orm derives generate `pub` items (Entity, Column, ActiveModel...) that are only
// reachable inside this crate.
#![allow(unreachable_pub)]

pub(crate) mod documents {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "documents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub content_type: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub document_id: String,
        pub fields: String,
        pub deleted: bool,
        pub version: i64,
        pub meta: String,
        pub updated_at_ms: i64,
        /// When the row was first written (its insert leaves it be ever after).
        pub created_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub content_type: String,
        pub document_id: String,
        pub op: String,
        pub fields: String,
        pub base_version: i64,
        pub hlc_ms: i64,
        pub hlc_c: i32,
        pub state: String,
        pub unseen: Option<String>,
        pub outcome: Option<String>,
        pub created_at_ms: i64,
        pub sent_at_ms: Option<i64>,
        pub acked_at_ms: Option<i64>,
        pub resent: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod ships {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ships")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub ship_id: String,
        pub last_seq: i64,
        pub changes_applied: i64,
        pub last_seen_ms: Option<i64>,
        pub pending: i64,
        pub oldest_unacked_ms: Option<i64>,
        pub applied_csn: i64,
        pub registered_at_ms: i64,
        pub changes_refused: i64,
        pub last_refusal: Option<String>,
        pub decommissioned_at_ms: Option<i64>,
        pub online_since_ms: Option<i64>,
        pub resync: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod offsets {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "offsets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub topic: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub partition: i32,
        pub next_offset: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod broadcasts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "broadcasts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub csn: Option<i64>,
        pub payload: String,
        /// No longer read: broadcasts are published by position (counter
        /// `broadcasts_published`). Kept, and written `false`, so that a master of the
        /// previous version still running on the database while a new one migrates it keeps
        /// working until it hands over.
        pub published: bool,
        pub created_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod conflicts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "conflicts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub content_type: String,
        pub document_id: String,
        pub kind: String,
        pub ship_id: String,
        pub ship_seq: i64,
        pub base_version: i64,
        pub master_version: i64,
        pub fields: String,
        pub ship_values: String,
        pub ship_deleted: bool,
        pub master_values: String,
        pub master_deleted: bool,
        pub field_bases: Option<String>,
        pub status: String,
        pub strategy: Option<String>,
        pub resolution: Option<String>,
        pub resolved_csn: Option<i64>,
        pub created_at_ms: i64,
        pub updated_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod dead_letters {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "dead_letters")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub topic: String,
        pub partition: i32,
        pub offset: i64,
        pub key: Option<Vec<u8>>,
        pub payload: Vec<u8>,
        pub reason: String,
        pub status: String,
        pub created_at_ms: i64,
        pub handled_at_ms: Option<i64>,
        pub attempts: i32,
        pub next_retry_at_ms: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod counters {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "counters")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub value: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod node_keys {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "node_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub seed: String,
        pub created_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod peer_keys {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "peer_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub signer: String,
        pub public_key: String,
        pub status: String,
        pub source: String,
        pub first_seen_ms: i64,
        pub updated_at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod audit_log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at_ms: i64,
        pub role: String,
        pub action: String,
        pub target: String,
        pub detail: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod resync {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "resync")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub phase: String,
        pub full: bool,
        pub reason: String,
        pub after_csn: i64,
        pub at_csn: Option<i64>,
        pub at_offset: Option<i64>,
        pub last_seq: Option<i64>,
        pub cursor: Option<String>,
        pub received: i64,
        pub total: Option<i64>,
        pub bytes: i64,
        pub pages: i64,
        pub requested_at_ms: i64,
        pub started_at_ms: Option<i64>,
        pub finished_at_ms: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod ship_seqs {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ship_seqs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub ship_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub hlc_ms: Option<i64>,
        pub hlc_c: Option<i32>,
        pub content_type: Option<String>,
        pub document_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod feed {
    use sea_orm::entity::prelude::*;

    /// Written by the `documents` triggers alone (see the migration that creates them).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "feed")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub content_type: String,
        pub document_id: String,
        pub kind: String,
        pub fields: String,
        pub version: i64,
        pub created_at_ms: i64,
        pub at_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
