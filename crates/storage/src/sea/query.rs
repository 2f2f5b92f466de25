//! A [`DocumentQuery`] as the SQL of either database: fields read with SQLite's JSON
//! functions or PostgreSQL's `jsonb` operators, every operand a bound value. What each test
//! means is in [`DocumentQuery`]'s documentation; both databases answer alike (the storage conformance suite
//! checks every operator on each).
//!
//! A test whose member is missing yields SQL `NULL`, which `WHERE` treats as false; `AND`
//! and `OR` keep that reading, and every `NOT` is written `NOT COALESCE(…, FALSE)` so that a
//! negation is the complement of what it negates. A field named only by letters, digits and
//! `_` is written into the SQL as a literal (the form an expression index over it takes);
//! any other name is bound.

use std::fmt::Write;

use offline_sync_model::ContentType;
use sea_orm::{DbBackend, Statement, Value};

use crate::query::{Case, DocumentQuery, Filter, Member, SortKey, Test, TextTest};

/// SQL text with its bound values, each placeholder written as its database numbers them.
struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

/// The candidates an operand gives for a field, by the type of value it is compared with.
struct Operand {
    text: String,
    number: Option<serde_json::Number>,
    boolean: Option<bool>,
}

impl Operand {
    fn of(raw: &str) -> Operand {
        let number = raw
            .parse::<i64>()
            .ok()
            .map(serde_json::Number::from)
            .or_else(|| raw.parse::<u64>().ok().map(serde_json::Number::from))
            .or_else(|| raw.parse::<f64>().ok().and_then(serde_json::Number::from_f64));
        let boolean = match raw {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        Operand {
            text: raw.to_owned(),
            number,
            boolean,
        }
    }
}

/// A comparison operator of SQL.
#[derive(Clone, Copy)]
enum Cmp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Cmp {
    fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
        }
    }
}

/// Whether a test names or compares with a NUL character.
fn has_nul(member: &Member, test: &Test) -> bool {
    let nul = |s: &String| s.contains('\0');
    let in_path = matches!(member, Member::Field(path) if path.iter().any(nul));
    in_path
        || match test {
            Test::Eq(v) | Test::Lt(v) | Test::Lte(v) | Test::Gt(v) | Test::Gte(v) | Test::Text(_, v, _) => {
                nul(v)
            }
            Test::In(list) => list.iter().any(nul),
            Test::Between(a, b) => nul(a) || nul(b),
            Test::Null => false,
        }
}

/// Whether SQLite's JSON path syntax can name each member of `path` (in quotes).
fn pathable(path: &[String]) -> bool {
    path.iter()
        .all(|name| !name.contains(['"', '\\']) && !name.chars().any(char::is_control))
}

/// Whether a field name goes into the SQL as it is.
fn plain(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Sql {
    fn new(backend: DbBackend) -> Sql {
        Sql {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    fn pg(&self) -> bool {
        self.backend == DbBackend::Postgres
    }

    fn push(&mut self, sql: &str) {
        self.text.push_str(sql);
    }

    fn bind(&mut self, value: impl Into<Value>) {
        self.values.push(value.into());
        if self.pg() {
            let n = self.values.len();
            let _ = write!(self.text, "${n}");
        } else {
            self.text.push('?');
        }
    }

    /// A bound text operand, typed as text on PostgreSQL (whose functions are overloaded).
    fn bind_text(&mut self, text: &str) {
        if self.pg() {
            self.push("CAST(");
            self.bind(text.to_owned());
            self.push(" AS text)");
        } else {
            self.bind(text.to_owned());
        }
    }

    /// The JSON value at `path` of `fields`, as the database reads it (SQLite: an SQL value;
    /// PostgreSQL: `jsonb`).
    fn field(&mut self, path: &[String]) -> Option<()> {
        if self.pg() {
            // jsonb refuses a NUL character (`\u0000` in the stored JSON text), which a string
            // field may hold: it reads as U+FFFD, so one such document cannot fail every query.
            self.push("(CAST(replace(fields, E'\\\\u0000', E'\\\\ufffd') AS jsonb)");
            for name in path {
                self.push(" -> ");
                if plain(name) {
                    let _ = write!(self.text, "'{name}'");
                } else {
                    self.bind_text(name);
                }
            }
            self.push(")");
        } else {
            self.sqlite_read(path, "json_extract", "value");
        }
        Some(())
    }

    /// The JSON type of the value at `path`: SQLite's `json_type` names (`text`, `integer`,
    /// `real`, `true`, …) or PostgreSQL's `jsonb_typeof` ones (`string`, `number`, …).
    fn kind(&mut self, path: &[String]) -> Option<()> {
        if self.pg() {
            self.push("jsonb_typeof");
            self.field(path)
        } else {
            self.sqlite_read(path, "json_type", "type");
            Some(())
        }
    }

    /// SQLite's `function(fields, path)` (`json_extract`, `json_type`), or its `json_each`
    /// `column` where the path syntax cannot name the member.
    fn sqlite_read(&mut self, path: &[String], function: &str, column: &str) {
        if pathable(path) {
            let _ = write!(self.text, "{function}(fields, ");
            self.sqlite_path(path);
            self.push(")");
        } else {
            self.sqlite_member(path, column);
        }
    }

    /// The string at `path` as text (a string's value; only read where the type is one).
    fn field_text(&mut self, path: &[String]) -> Option<()> {
        if self.pg() {
            self.push("(");
            self.field(path)?;
            self.push(" #>> '{}')");
            Some(())
        } else {
            self.field(path)
        }
    }

    /// Column `column` (`value` or `type`) of the member at `path`, read with `json_each`:
    /// for names SQLite's path syntax cannot hold. A member inside anything but an object is
    /// missing.
    fn sqlite_member(&mut self, path: &[String], column: &str) {
        let Some((last, parent)) = path.split_last() else {
            self.push("NULL");
            return;
        };
        let _ = write!(self.text, "(SELECT {column} FROM json_each(");
        self.sqlite_object(parent);
        self.push(") WHERE key = ");
        self.bind(last.clone());
        self.push(")");
    }

    /// The object at `path` (`fields` itself for none), as JSON text; NULL where the member
    /// is missing or not an object.
    fn sqlite_object(&mut self, path: &[String]) {
        let Some((last, parent)) = path.split_last() else {
            self.push("fields");
            return;
        };
        self.push("(SELECT CASE WHEN type = 'object' THEN value END FROM json_each(");
        self.sqlite_object(parent);
        self.push(") WHERE key = ");
        self.bind(last.clone());
        self.push(")");
    }

    fn sqlite_path(&mut self, path: &[String]) {
        if path.iter().all(|name| plain(name)) {
            let _ = write!(
                self.text,
                "'${}'",
                path.iter().map(|n| format!(".{n}")).collect::<String>()
            );
        } else {
            let quoted: String = path.iter().map(|n| format!(".\"{n}\"")).collect();
            self.bind(format!("${quoted}"));
        }
    }

    /// `kind(path) IN (names)`.
    fn kind_in(&mut self, path: &[String], names: &[&str]) -> Option<()> {
        self.kind(path)?;
        let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        let _ = write!(self.text, " IN ({})", list.join(", "));
        Some(())
    }

    fn filter(&mut self, filter: &Filter) {
        match filter {
            Filter::All(parts) | Filter::Any(parts) if parts.is_empty() => {
                self.push(if matches!(filter, Filter::All(_)) {
                    "TRUE"
                } else {
                    "FALSE"
                });
            }
            Filter::All(parts) | Filter::Any(parts) => {
                let join = if matches!(filter, Filter::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                self.push("(");
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        self.push(join);
                    }
                    self.filter(part);
                }
                self.push(")");
            }
            Filter::Not(inner) => {
                self.push("(NOT COALESCE(");
                self.filter(inner);
                self.push(", FALSE))");
            }
            Filter::Test(member, test) => self.test(member, test),
        }
    }

    fn test(&mut self, member: &Member, test: &Test) {
        let mark = (self.text.len(), self.values.len());
        self.push("(");
        let written = match member {
            // PostgreSQL's text holds no NUL, so neither does a stored member or value it
            // reads; SQLite answers alike.
            _ if has_nul(member, test) => None,
            Member::Field(path) => self.field_test(path, test),
            Member::DocumentId => self.column_test("document_id", None, test),
            Member::UpdatedAt => self.column_test("updated_at_ms", Some(()), test),
            Member::CreatedAt => self.column_test("created_at_ms", Some(()), test),
            Member::Version => self.column_test("version", Some(()), test),
        };
        match written {
            Some(()) => self.push(")"),
            None => {
                // A test that cannot hold: an operand not of its member's type, or a NUL.
                self.text.truncate(mark.0);
                self.values.truncate(mark.1);
                self.push("FALSE");
            }
        }
    }

    /// `(each item) OR (…)`: false for no item.
    fn any_of<T>(&mut self, items: &[T], each: impl Fn(&mut Sql, &T) -> Option<()>) -> Option<()> {
        if items.is_empty() {
            self.push("FALSE");
            return Some(());
        }
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(" OR ");
            }
            self.push("(");
            each(self, item)?;
            self.push(")");
        }
        Some(())
    }

    fn field_test(&mut self, path: &[String], test: &Test) -> Option<()> {
        match test {
            Test::Eq(raw) => self.field_cmp(path, Cmp::Eq, raw),
            Test::Lt(raw) => self.field_cmp(path, Cmp::Lt, raw),
            Test::Lte(raw) => self.field_cmp(path, Cmp::Lte, raw),
            Test::Gt(raw) => self.field_cmp(path, Cmp::Gt, raw),
            Test::Gte(raw) => self.field_cmp(path, Cmp::Gte, raw),
            Test::In(list) => {
                self.field_eq(path, &list.iter().map(|raw| Operand::of(raw)).collect::<Vec<_>>())
            }
            Test::Between(low, high) => {
                self.push("(");
                self.field_cmp(path, Cmp::Gte, low)?;
                self.push(") AND (");
                self.field_cmp(path, Cmp::Lte, high)?;
                self.push(")");
                Some(())
            }
            Test::Text(how, operand, case) => {
                self.kind(path)?;
                self.push(if self.pg() {
                    " = 'string' AND "
                } else {
                    " = 'text' AND "
                });
                self.text_test(&|s: &mut Sql| s.field_text(path), *how, operand, *case)
            }
            Test::Null => {
                self.kind(path)?;
                self.push(" IS NULL OR ");
                self.kind(path)?;
                self.push(" = 'null'");
                Some(())
            }
        }
    }

    /// `path cmp raw` by the candidates of `raw`: as text with a string, as a number with a
    /// number, and (equality only, [`Sql::field_eq`]) as a boolean with a boolean.
    fn field_cmp(&mut self, path: &[String], cmp: Cmp, raw: &str) -> Option<()> {
        let operand = Operand::of(raw);
        if matches!(cmp, Cmp::Eq) {
            return self.field_eq(path, &[operand]);
        }
        let op = cmp.sql();
        let text = |s: &mut Sql| {
            if s.pg() {
                s.push("jsonb_typeof");
                s.field(path)?;
                s.push(" = 'string' AND ");
                s.field_text(path)?;
                let _ = write!(s.text, " COLLATE \"C\" {op} ");
                s.bind_text(&operand.text);
            } else {
                s.kind(path)?;
                s.push(" = 'text' AND ");
                s.field(path)?;
                let _ = write!(s.text, " {op} ");
                s.bind(operand.text.clone());
            }
            Some(())
        };
        let number_cmp = |s: &mut Sql| {
            let n = operand.number.as_ref()?;
            if s.pg() {
                s.kind(path)?;
                s.push(" = 'number' AND ");
                s.field(path)?;
                let _ = write!(s.text, " {op} CAST(");
                s.bind(n.to_string());
                s.push(" AS jsonb)");
            } else {
                s.kind_in(path, &["integer", "real"])?;
                s.push(" AND ");
                s.field(path)?;
                let _ = write!(s.text, " {op} ");
                match n.as_i64() {
                    Some(i) => s.bind(i),
                    None => s.bind(n.as_f64()?),
                }
            }
            Some(())
        };
        let as_number = if operand.number.is_some() {
            &[false, true][..]
        } else {
            &[false][..]
        };
        self.any_of(
            as_number,
            |s, &number| if number { number_cmp(s) } else { text(s) },
        )
    }

    /// `path` equal to one of `operands`, as one `IN` over the value itself (the form an
    /// expression index over the field answers): PostgreSQL's `jsonb` equality tells types
    /// apart; SQLite's values do too but for booleans, which read as 1 and 0 and are kept out
    /// by their type.
    fn field_eq(&mut self, path: &[String], operands: &[Operand]) -> Option<()> {
        if operands.is_empty() {
            self.push("FALSE");
            return Some(());
        }
        let mut candidates: Vec<serde_json::Value> = Vec::new();
        for o in operands {
            candidates.push(serde_json::Value::String(o.text.clone()));
            candidates.extend(o.number.clone().map(serde_json::Value::Number));
        }
        let booleans: Vec<bool> = operands.iter().filter_map(|o| o.boolean).collect();
        if self.pg() {
            candidates.extend(booleans.into_iter().map(serde_json::Value::Bool));
            self.field(path)?;
            self.push(" IN (");
            for (i, c) in candidates.iter().enumerate() {
                self.push(if i > 0 { ", CAST(" } else { "CAST(" });
                self.bind(c.to_string());
                self.push(" AS jsonb)");
            }
            self.push(")");
            return Some(());
        }
        self.push("(");
        self.field(path)?;
        self.push(" IN (");
        for (i, c) in candidates.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            match c {
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(v) => self.bind(v),
                    None => self.bind(n.as_f64()?),
                },
                serde_json::Value::String(text) => self.bind(text),
                _ => return None,
            }
        }
        self.push(") AND ");
        self.kind_in(path, &["text", "integer", "real"])?;
        self.push(")");
        for b in booleans {
            self.push(" OR ");
            self.kind(path)?;
            let _ = write!(self.text, " = '{b}'");
        }
        Some(())
    }

    /// A text test of the text `subject` writes: `how` against `operand`.
    fn text_test(
        &mut self,
        subject: &dyn Fn(&mut Sql) -> Option<()>,
        how: TextTest,
        operand: &str,
        case: Case,
    ) -> Option<()> {
        let folded = case == Case::Insensitive;
        let x = |s: &mut Sql| {
            if folded {
                s.push("lower(");
            }
            subject(s)?;
            if s.pg() {
                s.push(" COLLATE \"C\"");
            }
            if folded {
                s.push(")");
            }
            Some(())
        };
        let o = |s: &mut Sql| {
            if folded {
                s.push("lower(");
            }
            s.bind_text(operand);
            if s.pg() {
                s.push(" COLLATE \"C\"");
            }
            if folded {
                s.push(")");
            }
        };
        match how {
            TextTest::Equals => {
                x(self)?;
                self.push(" = ");
                o(self);
            }
            TextTest::Contains => {
                self.push(if self.pg() { "strpos(" } else { "instr(" });
                x(self)?;
                self.push(", ");
                o(self);
                self.push(") > 0");
            }
            TextTest::StartsWith => {
                self.push(if self.pg() { "left(" } else { "substr(" });
                x(self)?;
                self.push(if self.pg() { ", " } else { ", 1, " });
                self.push("length(");
                o(self);
                self.push(")) = ");
                o(self);
            }
            TextTest::EndsWith => {
                if self.pg() {
                    self.push("right(");
                    x(self)?;
                    self.push(", length(");
                    o(self);
                    self.push(")) = ");
                    o(self);
                } else {
                    self.push("length(");
                    x(self)?;
                    self.push(") >= length(");
                    o(self);
                    self.push(") AND substr(");
                    x(self)?;
                    self.push(", length(");
                    x(self)?;
                    self.push(") - length(");
                    o(self);
                    self.push(") + 1) = ");
                    o(self);
                }
            }
        }
        Some(())
    }

    /// A test of a column: text (`document_id`) or a whole number (`numeric`).
    fn column_test(&mut self, column: &'static str, numeric: Option<()>, test: &Test) -> Option<()> {
        let cmp = |s: &mut Sql, cmp: Cmp, raw: &str| -> Option<()> {
            let _ = write!(s.text, "{column} {} ", cmp.sql());
            if numeric.is_some() {
                s.bind(raw.parse::<i64>().ok()?);
            } else if s.pg() && matches!(cmp, Cmp::Eq) {
                // Equality needs no collation, and without one the primary key answers it.
                s.bind_text(raw);
            } else if s.pg() {
                s.bind_text(raw);
                s.push(" COLLATE \"C\"");
            } else {
                s.bind(raw.to_owned());
            }
            Some(())
        };
        match test {
            Test::Eq(raw) => cmp(self, Cmp::Eq, raw),
            Test::Lt(raw) => cmp(self, Cmp::Lt, raw),
            Test::Lte(raw) => cmp(self, Cmp::Lte, raw),
            Test::Gt(raw) => cmp(self, Cmp::Gt, raw),
            Test::Gte(raw) => cmp(self, Cmp::Gte, raw),
            Test::In(list) if list.is_empty() => {
                self.push("FALSE");
                Some(())
            }
            Test::In(list) => {
                for (i, raw) in list.iter().enumerate() {
                    if i > 0 {
                        self.push(" OR ");
                    }
                    cmp(self, Cmp::Eq, raw)?;
                }
                Some(())
            }
            Test::Between(low, high) => {
                cmp(self, Cmp::Gte, low)?;
                self.push(" AND ");
                cmp(self, Cmp::Lte, high)
            }
            Test::Text(how, operand, case) => {
                numeric.is_none().then_some(())?;
                self.text_test(
                    &|s: &mut Sql| {
                        s.push(column);
                        Some(())
                    },
                    *how,
                    operand,
                    *case,
                )
            }
            Test::Null => {
                self.push("FALSE");
                Some(())
            }
        }
    }

    fn sort_key(&mut self, key: &SortKey) {
        let dir = if key.descending { " DESC" } else { " ASC" };
        let column = match &key.member {
            Member::DocumentId => "document_id",
            Member::UpdatedAt => "updated_at_ms",
            Member::CreatedAt => "created_at_ms",
            Member::Version => "version",
            Member::Field(path) => {
                let mark = (self.text.len(), self.values.len());
                if path.iter().any(|n| n.contains('\0')) || self.field_sort(path, dir).is_none() {
                    self.text.truncate(mark.0);
                    self.values.truncate(mark.1);
                    self.push("document_id ASC");
                }
                return;
            }
        };
        let _ = write!(self.text, "{column}{dir}");
    }

    /// A field's sort: its type's rank, then its value as a number, then as text.
    fn field_sort(&mut self, path: &[String], dir: &str) -> Option<()> {
        if self.pg() {
            self.push("CASE ");
            self.kind(path)?;
            let _ = write!(
                self.text,
                " WHEN 'boolean' THEN 1 WHEN 'number' THEN 2 WHEN 'string' THEN 3 WHEN 'array' THEN 4 \
                 WHEN 'object' THEN 5 ELSE 0 END{dir}, CASE "
            );
            self.kind(path)?;
            self.push(" WHEN 'number' THEN CAST(");
            self.field_text(path)?;
            self.push(" AS numeric) WHEN 'boolean' THEN CASE WHEN ");
            self.field(path)?;
            let _ = write!(self.text, " = 'true'::jsonb THEN 1 ELSE 0 END END{dir}, (CASE ");
            self.kind(path)?;
            self.push(" WHEN 'string' THEN ");
            self.field_text(path)?;
            let _ = write!(self.text, " END) COLLATE \"C\"{dir}");
        } else {
            self.push("CASE ");
            self.kind(path)?;
            let _ = write!(
                self.text,
                " WHEN 'true' THEN 1 WHEN 'false' THEN 1 WHEN 'integer' THEN 2 WHEN 'real' THEN 2 \
                 WHEN 'text' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 5 ELSE 0 END{dir}, CASE WHEN "
            );
            self.kind_in(path, &["true", "false", "integer", "real"])?;
            self.push(" THEN ");
            self.field(path)?;
            let _ = write!(self.text, " END{dir}, CASE WHEN ");
            self.kind(path)?;
            self.push(" = 'text' THEN ");
            self.field(path)?;
            let _ = write!(self.text, " END{dir}");
        }
        Some(())
    }

    /// `WHERE …` of the live documents of `ct` that pass `query`'s filter.
    fn matching(&mut self, ct: &ContentType, query: &DocumentQuery) {
        self.push(" FROM documents WHERE content_type = ");
        self.bind(ct.as_str().to_owned());
        self.push(" AND deleted = ");
        self.bind(false);
        if let Some(filter) = &query.filter {
            self.push(" AND ");
            self.filter(filter);
        }
    }

    fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }
}

/// The names of the field indexes of `documents` (as column `name`): SQLite's query, then
/// PostgreSQL's.
pub(crate) const FIELD_INDEXES: [&str; 2] = [
    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'documents' \
     AND substr(name, 1, 19) = 'documents_by_field_'",
    "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'documents' \
     AND schemaname = current_schema() AND starts_with(indexname, 'documents_by_field_')",
];

/// Most characters of a field that can be indexed (an index's name holds it, and PostgreSQL's
/// names take at most 63).
const MAX_INDEXED_FIELD: usize = 40;

/// The index over `field`: its name and the statement that makes it. It holds the field's
/// value, written exactly as a filter reads it ([`Sql::field`]), then the content type: the
/// value comes first so that only a filter on the field reads the index, and a listing
/// without one keeps reading the type's rows in key order. The name is
/// `documents_by_field_`, the field in lower case (its first 32 characters), and a hash of
/// the exact field and of the indexed expression: two fields that differ in case only, or an
/// index of an earlier expression, never share a name (SQLite's names ignore case; a name
/// stays within PostgreSQL's 63 bytes).
pub(crate) fn field_index(backend: DbBackend, field: &str) -> crate::Result<(String, String)> {
    if !plain(field) || field.len() > MAX_INDEXED_FIELD {
        return Err(crate::Error::Invalid {
            reason: format!("{field:?} cannot be indexed: use 1 to {MAX_INDEXED_FIELD} of A-Z a-z 0-9 _"),
        });
    }
    let mut sql = Sql::new(backend);
    if sql.pg() {
        sql.push("(");
    }
    let _ = sql.field(&[field.to_owned()]);
    if sql.pg() {
        sql.push(")");
    }
    let columns = format!("{}, content_type", sql.text);
    let hash = field
        .bytes()
        .chain([0])
        .chain(columns.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let lower = field.to_ascii_lowercase();
    let name = format!(
        "documents_by_field_{}_{:08x}",
        &lower[..lower.len().min(32)],
        hash as u32
    );
    let create = format!("CREATE INDEX IF NOT EXISTS \"{name}\" ON documents ({columns})");
    Ok((name, create))
}

/// The page of the live documents of `ct` that `query` shows, in its order.
pub(super) fn rows(
    backend: DbBackend,
    ct: &ContentType,
    query: &DocumentQuery,
    offset: u64,
    limit: u64,
) -> Statement {
    let mut sql = Sql::new(backend);
    sql.push(
        "SELECT content_type, document_id, fields, deleted, version, meta, updated_at_ms, created_at_ms",
    );
    sql.matching(ct, query);
    sql.push(" ORDER BY ");
    for key in &query.sort {
        sql.sort_key(key);
        sql.push(", ");
    }
    sql.push("document_id ASC LIMIT ");
    sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    sql.push(" OFFSET ");
    sql.bind(i64::try_from(offset).unwrap_or(i64::MAX));
    sql.statement()
}

/// How many live documents of `ct` `query` shows, as column `n`.
pub(super) fn count(backend: DbBackend, ct: &ContentType, query: &DocumentQuery) -> Statement {
    let mut sql = Sql::new(backend);
    sql.push("SELECT COUNT(*) AS n");
    sql.matching(ct, query);
    sql.statement()
}
