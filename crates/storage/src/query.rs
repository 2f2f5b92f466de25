//! Which live documents of one type a listing shows and in which order: the filters, sort
//! and count of Strapi 5's REST API, evaluated by the database.

/// What a listing of one content type asks for beyond its page.
///
/// Documents keep no schema, so a comparison takes its meaning from the value a document
/// holds: an operand (always text, as a query string gives it) compares as text with a
/// string, as a number with a number (when it reads as one) and as a boolean with `true` or
/// `false` (when it is one of these words). `"5"` thus equals the string `"5"` and the number
/// `5`, never the boolean `true`. Order comparisons (`$lt` … `$between`) hold for strings and
/// numbers; the text operators (`$eqi`, `$contains`, `$startsWith`, …) hold for strings only.
/// Text compares byte by byte (UTF-8, as SQLite's `BINARY` and PostgreSQL's `"C"`), and
/// the case-insensitive operators fold ASCII letters only, identically on both databases.
/// A missing field reads as null. Every negation (`$ne`, `$notIn`, `$notContains`, `$not`,
/// …) is the exact complement of what it negates, so it holds for a document without the
/// field. A sort puts a field's missing or null values first, then booleans (false first),
/// numbers, strings, arrays and objects (arrays and objects in no set order among
/// themselves), and reverses that when descending.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DocumentQuery {
    /// The documents shown: those that pass (all when `None`).
    pub filter: Option<Filter>,
    /// Sort keys, first the most significant; ties, and a listing without keys, go by
    /// document id.
    pub sort: Vec<SortKey>,
    /// Whether the count may be left out (Strapi's `pagination[withCount]=false`): the total
    /// then reads 0, and a large listing is spared reading every match.
    pub uncounted: bool,
}

/// A condition on a document.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// Every condition holds (true when there is none).
    All(Vec<Filter>),
    /// At least one condition holds (false when there is none).
    Any(Vec<Filter>),
    /// The condition does not hold.
    Not(Box<Filter>),
    /// A member passes a test.
    Test(Member, Test),
}

/// What a test or a sort key reads of a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    /// The document id (text).
    DocumentId,
    /// The time of the last write, in milliseconds since the epoch; an operand is such a
    /// number, in decimal.
    UpdatedAt,
    /// The time of the first write on this node, as `UpdatedAt`.
    CreatedAt,
    /// The version (a whole number; the operand in decimal).
    Version,
    /// A field, or a member inside an object field: the path of names from the top.
    Field(Vec<String>),
}

/// A test of one member against operands given as text.
#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    /// Equal.
    Eq(String),
    /// Less than.
    Lt(String),
    /// Less than or equal.
    Lte(String),
    /// Greater than.
    Gt(String),
    /// Greater than or equal.
    Gte(String),
    /// Equal to one of them (none: false).
    In(Vec<String>),
    /// From the first to the second, both included.
    Between(String, String),
    /// A text test on a string.
    Text(TextTest, String, Case),
    /// Null or missing.
    Null,
}

/// How a text test compares a string with its operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextTest {
    /// The whole string.
    Equals,
    /// Holds the operand anywhere.
    Contains,
    /// Starts with it.
    StartsWith,
    /// Ends with it.
    EndsWith,
}

/// Whether a text test tells case (of ASCII letters) apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// `a` is not `A`.
    Sensitive,
    /// `a` is `A`.
    Insensitive,
}

/// One key of a sort.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// What is compared.
    pub member: Member,
    /// Largest first.
    pub descending: bool,
}
