// The official Strapi client, @strapi/client 1.6.2 from npm, against one running node
// (tests/nodes.rs starts a master and a replica and runs this once against each).
// BASE_URL is the node's address, TOKEN its admin token, TAG marks this run's documents
// (the master's reach the replica too). Every request is made through the Strapi route
// /api/articles and, with the same parameters, through /api/documents/api::article.article:
// both must answer alike. Exits non-zero, saying what differs, on the first failure.
import assert from 'node:assert/strict';
import { strapi, HTTPBadRequestError, HTTPNotFoundError } from '@strapi/client';

const { BASE_URL, TOKEN, TAG } = process.env;
const client = strapi({ baseURL: `${BASE_URL}/api`, auth: TOKEN });
const plural = client.collection('articles');
const byUid = client.collection('articles', { path: '/documents/api::article.article' });

const mine = { tag: { $eq: TAG } };
// What a node changes on its own between two reads (a replica takes the master's answer to
// its writes meanwhile): left out where two answers are compared.
const settled = (answer) => {
  const strip = ({ version, createdAt, updatedAt, ...rest }) => rest;
  return Array.isArray(answer.data) ? { ...answer, data: answer.data.map(strip) } : { ...answer, data: strip(answer.data) };
};
const only = (filters) => ({ $and: [mine, filters ?? {}] });
const ns = (answer) => answer.data.map((d) => d.n);

// Create, read, update and delete through the plural route.
const ids = {};
for (const [n, title] of [[1, 'alpha'], [2, 'Beta'], [3, 'gamma'], [4, 'delta'], [5, '50% off_']]) {
  const made = await plural.create({ n, title, tag: TAG });
  assert.equal(made.data.n, n);
  assert.match(made.data.documentId, /^[0-9a-f-]{36}$/);
  ids[n] = made.data.documentId;
}
const scratch = await byUid.create({ n: 6, title: 'scratch', tag: TAG });
assert.deepEqual((await plural.findOne(ids[1])).data.title, 'alpha');
assert.deepEqual(settled(await plural.findOne(ids[2])), settled(await byUid.findOne(ids[2])));
const updated = await plural.update(ids[1], { title: 'alpha!' });
assert.equal(updated.data.title, 'alpha!');
assert.equal((await byUid.findOne(ids[1])).data.title, 'alpha!');
await plural.delete(scratch.data.documentId);
await assert.rejects(plural.findOne(scratch.data.documentId), HTTPNotFoundError);

// Queries: [parameters, the n of the documents answered, their total].
const queries = [
  [{ filters: only({ n: { $eq: 99 } }) }, [], 0],
  [{ filters: only({ n: { $gte: 3 } }), sort: 'n:desc', fields: ['n'] }, [5, 4, 3], 3],
  [{ filters: only({ $or: [{ n: { $lt: 2 } }, { title: { $containsi: 'BET' } }] }), sort: ['n:asc'] }, [1, 2], 2],
  [{ filters: only({ title: { $contains: '%' } }) }, [5], 1],
  [{ filters: only({ title: { $endsWith: '_' } }) }, [5], 1],
  [{ filters: only({ title: { $startsWith: 'a' } }), fields: ['title', 'n'] }, [1], 1],
  [{ filters: only({ n: { $in: [2, 4] } }), sort: 'n' }, [2, 4], 2],
  [{ filters: only({ n: { $notIn: [2, 4] } }), sort: 'n' }, [1, 3, 5], 3],
  [{ filters: only({ $not: { n: { $between: [2, 4] } } }), sort: 'n' }, [1, 5], 2],
  [{ filters: only({ title: { $null: true } }) }, [], 0],
  [{ filters: only({ documentId: { $eq: ids[3] } }) }, [3], 1],
  [{ filters: only({}), sort: ['title:asc'] }, [5, 2, 1, 4, 3], 5],
  [{ filters: only({}), sort: 'n:desc', pagination: { start: 1, limit: 2 } }, [4, 3], 5],
  [{ filters: only({}), sort: 'n', pagination: { page: 2, pageSize: 2 } }, [3, 4], 5],
  [{ filters: only({}), sort: 'n', pagination: { page: 1, pageSize: 2, withCount: false } }, [1, 2], undefined],
];
for (const [params, expected, total] of queries) {
  const what = JSON.stringify(params);
  const answer = await plural.find(params);
  assert.deepEqual(settled(await byUid.find(params)), settled(answer), `${what}: the two routes differ`);
  assert.deepEqual(ns(answer), expected, what);
  assert.equal(answer.meta.pagination.total, total, `${what}: total`);
  if (params.fields) {
    for (const doc of answer.data) {
      assert.deepEqual(Object.keys(doc).sort(), ['documentId', ...params.fields].sort(), what);
    }
  }
}

// What the node does not support is a 400 naming it, never an answer that ignores it.
for (const params of [{ filters: { n: { $regex: '1' } } }, { populate: '*' }]) {
  for (const route of [plural, byUid]) {
    const refused = await route.find(params).then(
      () => assert.fail(`${JSON.stringify(params)} was answered`),
      (e) => e,
    );
    assert.ok(refused instanceof HTTPBadRequestError, `${JSON.stringify(params)}: ${refused}`);
    const body = await refused.response.json();
    const named = Object.keys(params)[0] === 'populate' ? 'populate' : '$regex';
    assert.ok(body.error.message.includes(named), body.error.message);
  }
}
console.log(`ok: ${queries.length} queries through both routes, CRUD, refusals`);
