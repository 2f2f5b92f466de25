//! Strapi 5's query parameters of the document routes beyond pagination: `filters`, `sort`
//! and `fields`, read from the bracket syntax of the `qs` library Strapi and its clients use
//! (`filters[$or][0][n][$lt]=5`, `sort[0]=n:desc`, `fields[0]=title`). Anything a route does
//! not apply, and any operator this engine does not know, is refused by name: a filter passed
//! over would answer as if it matched everything.

use offline_sync_engine::{Case, DocumentQuery, Filter, Member, SortKey, Test, TextTest};
use serde_json::Value;

use crate::error::{ApiError, Result};

/// The filter operators, as Strapi 5 names them.
pub(crate) const OPERATORS: &[&str] = &[
    "$eq",
    "$eqi",
    "$ne",
    "$nei",
    "$lt",
    "$lte",
    "$gt",
    "$gte",
    "$in",
    "$notIn",
    "$contains",
    "$notContains",
    "$containsi",
    "$notContainsi",
    "$startsWith",
    "$startsWithi",
    "$endsWith",
    "$endsWithi",
    "$null",
    "$notNull",
    "$between",
    "$and",
    "$or",
    "$not",
];

/// Most tests one filter holds, values of `$in` included.
const MAX_TESTS: usize = 200;
/// Most brackets in one parameter name.
const MAX_DEPTH: usize = 16;
/// Most keys of one sort.
const MAX_SORT_KEYS: usize = 64;

/// What a request's `filters`, `sort` and `fields` ask for.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Strapi {
    pub(crate) query: DocumentQuery,
    /// The members shown besides `documentId` (all when `None`).
    pub(crate) fields: Option<Vec<String>>,
}

/// The parameters a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Takes {
    /// A listing: filters, sort, fields and pagination.
    List,
    /// One document: fields.
    One,
}

impl Takes {
    fn names(self) -> &'static str {
        match self {
            Takes::List => "filters, sort, fields and pagination (page, pageSize, pagination[...])",
            Takes::One => "fields",
        }
    }
}

/// A parameter's value, or the values and members under its name's brackets, in the order
/// given.
#[derive(Debug)]
enum Tree {
    Leaf(String),
    Node(Vec<(String, Tree)>),
}

impl Tree {
    /// Puts `value` at `path`: an empty segment (`[]`) appends; a value given again for one
    /// name makes a list of both.
    fn insert(&mut self, path: &[String], value: String, name: &str) -> Result<()> {
        let Tree::Node(members) = self else {
            return Err(ApiError::bad_request(format!(
                "query parameter {name:?} puts members under a value given already"
            )));
        };
        let Some((first, rest)) = path.split_first() else {
            return Err(ApiError::bad_request(format!(
                "query parameter {name:?} names no member"
            )));
        };
        if first.is_empty() && !rest.is_empty() {
            // qs would merge `a[][x]=1&a[][y]=2` into one object; say which one instead.
            return Err(ApiError::bad_request(format!(
                "query parameter {name:?}: [] only ends a name; number the items (a[0][x]=…)"
            )));
        }
        let key = if first.is_empty() {
            members.len().to_string()
        } else {
            first.clone()
        };
        let at = match members.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                let fresh = if rest.is_empty() {
                    Tree::Leaf(value)
                } else {
                    let mut node = Tree::Node(Vec::new());
                    node.insert(rest, value, name)?;
                    node
                };
                members.push((key, fresh));
                return Ok(());
            }
        };
        let slot = &mut members[at].1;
        if rest.is_empty() {
            match slot {
                Tree::Leaf(old) => {
                    let old = std::mem::take(old);
                    *slot = Tree::Node(vec![
                        ("0".into(), Tree::Leaf(old)),
                        ("1".into(), Tree::Leaf(value)),
                    ]);
                }
                Tree::Node(list) if list.iter().all(|(k, _)| k.parse::<usize>().is_ok()) => {
                    let k = list.len().to_string();
                    list.push((k, Tree::Leaf(value)));
                }
                Tree::Node(_) => {
                    return Err(ApiError::bad_request(format!(
                        "query parameter {name:?} gives a value where members are given already"
                    )));
                }
            }
            Ok(())
        } else {
            slot.insert(rest, value, name)
        }
    }

    /// The values of a list (`a[0]=x&a[1]=y`, `a[]=x`, `a=x&a=y`) or of one value, in index
    /// order.
    fn values(&self, what: &str) -> Result<Vec<String>> {
        match self {
            Tree::Leaf(v) => Ok(vec![v.clone()]),
            Tree::Node(members) => {
                let mut indexed = Vec::with_capacity(members.len());
                for (k, v) in members {
                    let (Ok(i), Tree::Leaf(v)) = (k.parse::<usize>(), v) else {
                        return Err(ApiError::bad_request(format!("{what} takes a list of values")));
                    };
                    indexed.push((i, v.clone()));
                }
                indexed.sort_by_key(|(i, _)| *i);
                Ok(indexed.into_iter().map(|(_, v)| v).collect())
            }
        }
    }
}

/// `name[a][b]` as `("name", ["a", "b"])`.
fn split_name(name: &str) -> Result<(&str, Vec<String>)> {
    let Some(open) = name.find('[') else {
        return Ok((name, Vec::new()));
    };
    let (base, mut rest) = name.split_at(open);
    let mut path = Vec::new();
    while !rest.is_empty() {
        let close = rest
            .strip_prefix('[')
            .and_then(|r| r.find(']').map(|i| (&r[..i], &r[i + 1..])));
        let Some((segment, after)) = close.filter(|(segment, _)| !segment.contains('[')) else {
            return Err(ApiError::bad_request(format!(
                "query parameter {name:?} is not of the form name[member][member]…"
            )));
        };
        path.push(segment.to_owned());
        rest = after;
    }
    if path.len() > MAX_DEPTH {
        return Err(ApiError::bad_request(format!(
            "query parameter {name:?} nests deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok((base, path))
}

/// Reads `filters`, `sort` and `fields` from a query string; refuses any parameter the route
/// does not take, naming it. Pagination is left to [`crate::dto::PageQuery`].
pub(crate) fn parse(query: &str, takes: Takes) -> Result<Strapi> {
    let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?
        .into_inner();
    let mut filters = Tree::Node(Vec::new());
    let mut sort = Tree::Node(Vec::new());
    let mut fields = Tree::Node(Vec::new());
    let mut any_filter = false;
    let (mut any_sort, mut any_fields) = (false, false);
    for (name, value) in pairs {
        let (base, path) = split_name(&name)?;
        // A filter may hold a NUL: it matches nothing, as no stored text holds one.
        if base != "filters" && (name.contains('\0') || value.contains('\0')) {
            return Err(ApiError::bad_request(format!(
                "query parameter {name:?} holds a NUL character"
            )));
        }
        match (base, takes) {
            ("filters", Takes::List) => {
                any_filter = true;
                filters.insert(&path, value, &name)?;
            }
            ("sort", Takes::List) => {
                any_sort = true;
                sort.insert(&with_index(path), value, &name)?;
            }
            ("fields", _) => {
                any_fields = true;
                fields.insert(&with_index(path), value, &name)?;
            }
            // page=, pageSize= and pagination[...]= (whose names PageQuery checks).
            ("page" | "pageSize", Takes::List) if path.is_empty() => {}
            ("pagination", Takes::List) if !path.is_empty() => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "query parameter {name:?} is not supported: this route takes {}",
                    takes.names()
                )));
            }
        }
    }
    let filter = match (any_filter, filters) {
        (true, Tree::Node(members)) => {
            let mut budget = MAX_TESTS;
            Some(all(conditions(&members, &[], &mut budget)?))
        }
        _ => None,
    };
    Ok(Strapi {
        query: DocumentQuery {
            filter,
            sort: if any_sort { sort_keys(&sort)? } else { Vec::new() },
            uncounted: false,
        },
        fields: if any_fields { field_list(&fields)? } else { None },
    })
}

/// `sort=x` and `fields=x` are lists of one: their values sit at index 0, as `sort[0]=x`.
fn with_index(path: Vec<String>) -> Vec<String> {
    if path.is_empty() {
        vec![String::new()]
    } else {
        path
    }
}

fn all(mut parts: Vec<Filter>) -> Filter {
    if parts.len() == 1 {
        parts.pop().unwrap_or(Filter::All(Vec::new()))
    } else {
        Filter::All(parts)
    }
}

/// The conditions of one level of `filters`, on the member at `path` (none at the top).
fn conditions(members: &[(String, Tree)], path: &[String], budget: &mut usize) -> Result<Vec<Filter>> {
    let mut out = Vec::with_capacity(members.len());
    for (key, tree) in members {
        if key.starts_with('$') {
            out.push(operator(key, tree, path, budget)?);
            continue;
        }
        let mut inner = path.to_vec();
        inner.push(key.clone());
        match tree {
            Tree::Leaf(v) => out.push(test(&inner, "$eq", Test::Eq(v.clone()), budget)?),
            // A list of values for a field (`filters[n][0]=1&filters[n][1]=2`, or `n` given
            // twice), as qs reads it: one of them, as Strapi takes it.
            Tree::Node(sub) if is_list(sub) => {
                let values = tree.values("a list of values")?;
                *budget = budget.checked_sub(values.len()).ok_or_else(too_many)?;
                out.push(test(&inner, "$in", Test::In(values), budget)?);
            }
            Tree::Node(sub) => out.push(all(conditions(sub, &inner, budget)?)),
        }
    }
    Ok(out)
}

/// Whether members are a list of values: indexed from 0, each a value.
fn is_list(members: &[(String, Tree)]) -> bool {
    !members.is_empty()
        && members
            .iter()
            .all(|(k, v)| k.parse::<usize>().is_ok() && matches!(v, Tree::Leaf(_)))
}

/// The groups of `$and`/`$or`: a list of filter objects (`$or[0][a][$eq]=1`).
fn groups(op: &str, tree: &Tree, path: &[String], budget: &mut usize) -> Result<Vec<Filter>> {
    let Tree::Node(items) = tree else {
        return Err(ApiError::bad_request(format!(
            "filter operator {op} takes a list of filters ({op}[0][field][$eq]=…)"
        )));
    };
    let mut indexed = Vec::with_capacity(items.len());
    for (k, item) in items {
        let (Ok(i), Tree::Node(members)) = (k.parse::<usize>(), item) else {
            return Err(ApiError::bad_request(format!(
                "filter operator {op} takes a list of filters ({op}[0][field][$eq]=…)"
            )));
        };
        indexed.push((i, all(conditions(members, path, budget)?)));
    }
    indexed.sort_by_key(|(i, _)| *i);
    Ok(indexed.into_iter().map(|(_, f)| f).collect())
}

fn operator(op: &str, tree: &Tree, path: &[String], budget: &mut usize) -> Result<Filter> {
    match op {
        "$and" => return Ok(Filter::All(groups(op, tree, path, budget)?)),
        "$or" => return Ok(Filter::Any(groups(op, tree, path, budget)?)),
        "$not" => {
            let Tree::Node(members) = tree else {
                return Err(ApiError::bad_request(
                    "filter operator $not takes a filter ($not[field][$eq]=…)",
                ));
            };
            return Ok(Filter::Not(Box::new(all(conditions(members, path, budget)?))));
        }
        _ => {}
    }
    if !OPERATORS.contains(&op) {
        return Err(ApiError::bad_request(format!(
            "filter operator {op} is not supported; the operators are {}",
            OPERATORS.join(" ")
        )));
    }
    if path.is_empty() {
        return Err(ApiError::bad_request(format!(
            "filter operator {op} needs a field: filters[field][{op}]=…"
        )));
    }
    let one = || match tree {
        Tree::Leaf(v) => Ok(v.clone()),
        Tree::Node(_) => Err(ApiError::bad_request(format!(
            "filter operator {op} takes one value"
        ))),
    };
    let flag = || match one()?.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "filter operator {op} takes true or false, not {other:?}"
        ))),
    };
    let text = |how, case| Ok::<_, ApiError>(Test::Text(how, one()?, case));
    let (negated, test_of) = match op {
        "$eq" => (false, Test::Eq(one()?)),
        "$ne" => (true, Test::Eq(one()?)),
        "$eqi" => (false, text(TextTest::Equals, Case::Insensitive)?),
        "$nei" => (true, text(TextTest::Equals, Case::Insensitive)?),
        "$lt" => (false, Test::Lt(one()?)),
        "$lte" => (false, Test::Lte(one()?)),
        "$gt" => (false, Test::Gt(one()?)),
        "$gte" => (false, Test::Gte(one()?)),
        "$in" | "$notIn" => {
            let values = tree.values(&format!("filter operator {op}"))?;
            *budget = budget.checked_sub(values.len()).ok_or_else(too_many)?;
            (op == "$notIn", Test::In(values))
        }
        "$between" => {
            let values = tree.values("filter operator $between")?;
            let [low, high] = <[String; 2]>::try_from(values).map_err(|_| {
                ApiError::bad_request(
                    "filter operator $between takes two values: $between[0]=…&$between[1]=…",
                )
            })?;
            (false, Test::Between(low, high))
        }
        "$contains" => (false, text(TextTest::Contains, Case::Sensitive)?),
        "$notContains" => (true, text(TextTest::Contains, Case::Sensitive)?),
        "$containsi" => (false, text(TextTest::Contains, Case::Insensitive)?),
        "$notContainsi" => (true, text(TextTest::Contains, Case::Insensitive)?),
        "$startsWith" => (false, text(TextTest::StartsWith, Case::Sensitive)?),
        "$startsWithi" => (false, text(TextTest::StartsWith, Case::Insensitive)?),
        "$endsWith" => (false, text(TextTest::EndsWith, Case::Sensitive)?),
        "$endsWithi" => (false, text(TextTest::EndsWith, Case::Insensitive)?),
        "$null" => (!flag()?, Test::Null),
        "$notNull" => (flag()?, Test::Null),
        _ => {
            return Err(ApiError::bad_request(format!(
                "filter operator {op} is not supported"
            )));
        }
    };
    let t = test(path, op, test_of, budget)?;
    Ok(if negated { Filter::Not(Box::new(t)) } else { t })
}

fn too_many() -> ApiError {
    ApiError::bad_request(format!("a filter holds at most {MAX_TESTS} tests and values"))
}

/// The member a path names: a document's own (`documentId`, `createdAt`, `updatedAt`,
/// `version`) or a field, or a member inside an object field. Any other name is a field's,
/// Strapi's `id` and `publishedAt` too: documents hold neither, so both read as missing.
fn member(path: &[String]) -> Result<Member> {
    let own = match path.first().map(String::as_str) {
        Some("documentId") => Some(Member::DocumentId),
        Some("updatedAt") => Some(Member::UpdatedAt),
        Some("createdAt") => Some(Member::CreatedAt),
        Some("version") => Some(Member::Version),
        _ => None,
    };
    match own {
        Some(m) if path.len() == 1 => Ok(m),
        Some(_) => Err(ApiError::bad_request(format!(
            "{} holds no members to filter on",
            path[0]
        ))),
        None => Ok(Member::Field(path.to_vec())),
    }
}

/// The test `op` gave for `path`, its operands checked against the member's type.
fn test(path: &[String], op: &str, test: Test, budget: &mut usize) -> Result<Filter> {
    *budget = budget.checked_sub(1).ok_or_else(too_many)?;
    let member = member(path)?;
    let test = match member {
        Member::UpdatedAt | Member::CreatedAt | Member::Version => {
            operands(test, op, |raw| own_operand(&member, raw))?
        }
        _ => test,
    };
    Ok(Filter::Test(member, test))
}

/// `test` with each operand converted by `convert`; text tests are refused.
fn operands(test: Test, op: &str, convert: impl Fn(&str) -> Result<String>) -> Result<Test> {
    Ok(match test {
        Test::Eq(v) => Test::Eq(convert(&v)?),
        Test::Lt(v) => Test::Lt(convert(&v)?),
        Test::Lte(v) => Test::Lte(convert(&v)?),
        Test::Gt(v) => Test::Gt(convert(&v)?),
        Test::Gte(v) => Test::Gte(convert(&v)?),
        Test::In(list) => Test::In(list.iter().map(|v| convert(v)).collect::<Result<_>>()?),
        Test::Between(a, b) => Test::Between(convert(&a)?, convert(&b)?),
        Test::Null => Test::Null,
        Test::Text(..) => {
            return Err(ApiError::bad_request(format!(
                "filter operator {op} applies to text; createdAt, updatedAt and version are not"
            )));
        }
    })
}

/// An operand of `createdAt` or `updatedAt` (an RFC 3339 time or a date, as milliseconds) or
/// of `version`.
fn own_operand(member: &Member, raw: &str) -> Result<String> {
    if *member == Member::Version {
        return raw
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .map(|v| v.to_string())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "version is a whole number from 0 to {}; {raw:?} is not",
                    i64::MAX
                ))
            });
    }
    let bad = || {
        ApiError::bad_request(format!(
            "createdAt and updatedAt take a time as 2024-01-15T10:30:00.000Z or a date as 2024-01-15; {raw:?} is neither"
        ))
    };
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let at = match time::OffsetDateTime::parse(raw, rfc3339) {
        Ok(at) => at,
        Err(_) => {
            let mut parts = raw.splitn(3, '-').map(str::parse::<u16>);
            let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day))) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            let month = time::Month::try_from(u8::try_from(month).map_err(|_| bad())?).map_err(|_| bad())?;
            let day = u8::try_from(day).map_err(|_| bad())?;
            time::Date::from_calendar_date(i32::from(year), month, day)
                .map_err(|_| bad())?
                .midnight()
                .assume_utc()
        }
    };
    Ok((at.unix_timestamp_nanos() / 1_000_000).to_string())
}

/// The keys of `sort`: each value is `field`, `field:asc` or `field:desc` (in any case), or
/// several of these with commas; `sort[field]=desc` says the same. Any other direction is
/// refused, never read as part of a name.
fn sort_keys(tree: &Tree) -> Result<Vec<SortKey>> {
    let Tree::Node(members) = tree else {
        return Ok(Vec::new());
    };
    let mut entries: Vec<(Option<usize>, String)> = Vec::new();
    for (k, v) in members {
        match (k.parse::<usize>(), v) {
            (Ok(i), Tree::Leaf(v)) => entries.push((Some(i), v.clone())),
            (Err(_), Tree::Leaf(dir)) => {
                direction(dir).ok_or_else(|| bad_direction(&format!("sort[{k}]={dir}")))?;
                entries.push((None, format!("{k}:{dir}")));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "sort takes field:asc or field:desc, or a list of them",
                ));
            }
        }
    }
    entries.sort_by_key(|(i, _)| *i);
    let mut keys = Vec::new();
    for (_, value) in entries {
        for item in value.split(',').filter(|s| !s.is_empty()) {
            let (name, descending) = match item.split_once(':') {
                None => (item, false),
                Some((name, dir)) => (name, direction(dir).ok_or_else(|| bad_direction(item))?),
            };
            keys.push(SortKey {
                member: member(&[name.to_owned()])?,
                descending,
            });
        }
    }
    if keys.len() > MAX_SORT_KEYS {
        return Err(ApiError::bad_request(format!(
            "sort takes at most {MAX_SORT_KEYS} keys"
        )));
    }
    Ok(keys)
}

/// Whether a sort direction is descending: `asc` or `desc`, in any case.
fn direction(dir: &str) -> Option<bool> {
    if dir.eq_ignore_ascii_case("asc") {
        Some(false)
    } else if dir.eq_ignore_ascii_case("desc") {
        Some(true)
    } else {
        None
    }
}

fn bad_direction(item: &str) -> ApiError {
    ApiError::bad_request(format!(
        "sort {item:?}: a key is field, field:asc or field:desc (a field name holds no ':')"
    ))
}

/// The names `fields` selects (`None` for `*`).
fn field_list(tree: &Tree) -> Result<Option<Vec<String>>> {
    let Tree::Node(members) = tree else {
        return Ok(None);
    };
    let mut indexed = Vec::new();
    for (k, v) in members {
        let (Ok(i), Tree::Leaf(v)) = (k.parse::<usize>(), v) else {
            return Err(ApiError::bad_request(
                "fields takes a list of names: fields[0]=title&fields[1]=n",
            ));
        };
        indexed.push((i, v.clone()));
    }
    indexed.sort_by_key(|(i, _)| *i);
    let names: Vec<String> = indexed
        .into_iter()
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    if names.iter().any(|n| n == "*") {
        return Ok(None);
    }
    Ok(Some(names))
}

/// `doc` (a document as the API shows it) with only `documentId` and the members `fields`
/// names.
pub(crate) fn select(doc: Value, fields: Option<&[String]>) -> Value {
    let (Some(fields), Value::Object(mut members)) = (fields, doc.clone()) else {
        return doc;
    };
    members.retain(|k, _| k == "documentId" || fields.iter().any(|f| f == k));
    Value::Object(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str) -> Member {
        Member::Field(vec![name.to_owned()])
    }

    fn key(member: Member, descending: bool) -> SortKey {
        SortKey { member, descending }
    }

    fn filter(query: &str) -> Filter {
        parse(query, Takes::List).unwrap().query.filter.unwrap()
    }

    fn refused(query: &str, takes: Takes) -> String {
        match parse(query, takes) {
            Err(e) => e.to_string(),
            Ok(q) => panic!("{query} was taken: {q:?}"),
        }
    }

    #[test]
    fn strapi_filters_read_as_their_tests() {
        assert_eq!(
            filter("filters[n][$eq]=99"),
            Filter::Test(field("n"), Test::Eq("99".into()))
        );
        assert_eq!(
            filter("filters[n]=99"),
            Filter::Test(field("n"), Test::Eq("99".into()))
        );
        assert_eq!(
            filter("filters[title][$notContainsi]=x%25_"),
            Filter::Not(Box::new(Filter::Test(
                field("title"),
                Test::Text(TextTest::Contains, "x%_".into(), Case::Insensitive)
            )))
        );
        assert_eq!(
            filter(
                "filters[$or][1][n][$lt]=5&filters[$or][0][address][city][$in][0]=Oslo&filters[$or][0][address][city][$in][1]=Bergen"
            ),
            Filter::Any(vec![
                Filter::Test(
                    Member::Field(vec!["address".into(), "city".into()]),
                    Test::In(vec!["Oslo".into(), "Bergen".into()])
                ),
                Filter::Test(field("n"), Test::Lt("5".into())),
            ])
        );
        assert_eq!(
            filter(
                "filters[n][$not][$between][0]=1&filters[n][$not][$between][1]=3&filters[documentId][$ne]=x"
            ),
            Filter::All(vec![
                Filter::Not(Box::new(Filter::Test(
                    field("n"),
                    Test::Between("1".into(), "3".into())
                ))),
                Filter::Not(Box::new(Filter::Test(Member::DocumentId, Test::Eq("x".into())))),
            ])
        );
        assert_eq!(
            filter(
                "filters[updatedAt][$gte]=2024-01-15T10:30:00.000Z&filters[note][$null]=false&filters[createdAt][$lt]=2024-01-16"
            ),
            Filter::All(vec![
                Filter::Test(Member::UpdatedAt, Test::Gte("1705314600000".into())),
                Filter::Not(Box::new(Filter::Test(field("note"), Test::Null))),
                Filter::Test(Member::CreatedAt, Test::Lt("1705363200000".into())),
            ])
        );
        assert_eq!(
            filter("filters[n][$in][]=1&filters[n][$in][]=2"),
            Filter::Test(field("n"), Test::In(vec!["1".into(), "2".into()]))
        );
        // A list given for a field is one of its values, as qs and Strapi read it.
        for list in ["filters[n]=1&filters[n]=2", "filters[n][1]=2&filters[n][0]=1"] {
            assert_eq!(
                filter(list),
                Filter::Test(field("n"), Test::In(vec!["1".into(), "2".into()])),
                "{list}"
            );
        }
    }

    #[test]
    fn sort_and_fields_read_in_each_of_their_forms() {
        let q = parse(
            "sort[0]=n:desc&sort[1]=title&fields[0]=n&fields[1]=title",
            Takes::List,
        )
        .unwrap();
        assert_eq!(
            q.query.sort,
            vec![key(field("n"), true), key(field("title"), false),]
        );
        assert_eq!(q.fields, Some(vec!["n".to_owned(), "title".to_owned()]));
        let q = parse("sort=n:DESC,updatedAt&fields=n", Takes::List).unwrap();
        assert_eq!(
            q.query.sort,
            vec![key(field("n"), true), key(Member::UpdatedAt, false),]
        );
        assert_eq!(q.fields, Some(vec!["n".to_owned()]));
        assert_eq!(parse("fields=*", Takes::One).unwrap().fields, None);
        let empty_items = parse("sort=,id:Desc,", Takes::List).unwrap().query.sort;
        assert_eq!(empty_items, vec![key(field("id"), true)]);
        assert_eq!(
            parse("page=2&pagination[limit]=3", Takes::List).unwrap(),
            Strapi::default()
        );
    }

    #[test]
    fn what_is_not_supported_is_refused_by_name() {
        for (query, takes, named) in [
            ("filters[n][$regex]=x", Takes::List, "$regex"),
            ("filters[$eq]=1", Takes::List, "needs a field"),
            ("filters[n][$in][0][x]=1", Takes::List, "$in"),
            ("filters[n][$between][0]=1", Takes::List, "$between"),
            ("filters[n][$null]=maybe", Takes::List, "$null"),
            ("filters[createdAt][$gt]=soon", Takes::List, "createdAt"),
            ("filters[updatedAt][$gt]=yesterday", Takes::List, "updatedAt"),
            ("filters[version][$contains]=1", Takes::List, "$contains"),
            ("filters[version][$eq]=-1", Takes::List, "version"),
            ("populate=*", Takes::List, "populate"),
            ("filters[n][$eq]=1", Takes::One, "filters"),
            ("sort=n", Takes::One, "sort"),
            ("filters[n[$eq]=1", Takes::List, "form"),
            ("sort=n%00", Takes::List, "NUL"),
            ("sort=n:down", Takes::List, "n:down"),
            ("sort=n:desc%20", Takes::List, "n:desc "),
            ("sort=a:b:asc", Takes::List, "a:b:asc"),
            ("sort[n]=descending", Takes::List, "descending"),
            ("page[]=3", Takes::List, "page[]"),
            ("pageSize[x]=5", Takes::List, "pageSize[x]"),
            ("pagination=5", Takes::List, "\"pagination\""),
            (
                "filters[$or][][a]=1&filters[$or][][b]=2",
                Takes::List,
                "number the items",
            ),
            (
                "filters[version][$lt]=9223372036854775808",
                Takes::List,
                "version",
            ),
            ("sort[0][n]=asc", Takes::List, "sort takes"),
        ] {
            let message = refused(query, takes);
            assert!(message.contains(named), "{query}: {message}");
        }
        let wide: String = (0..=MAX_TESTS)
            .map(|i| format!("filters[n][$in][{i}]={i}&"))
            .collect();
        assert!(refused(&wide, Takes::List).contains("at most"));
    }

    #[test]
    fn fields_keep_the_document_id_and_what_they_name() {
        let doc = serde_json::json!({"documentId": "d", "n": 1, "title": "t", "version": 3});
        let names = vec!["n".to_owned()];
        assert_eq!(
            select(doc.clone(), Some(&names)),
            serde_json::json!({"documentId": "d", "n": 1})
        );
        assert_eq!(select(doc.clone(), None), doc);
    }
}
