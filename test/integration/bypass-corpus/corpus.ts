/**
 * The bypass corpus: several hundred statements an analyst (region eu) might
 * send to learn what the policies hide — raw SSNs, email local parts,
 * salaries, card numbers, birth dates, and anything about customers of other
 * regions. Grouped by technique; each group is a function of the world so the
 * attempts can aim at real values.
 */
import { category, rowsWhere, type Attempt } from './attempt.js';
import type { World } from './world.js';

const q = (s: string): string => `'${s.replaceAll("'", "''")}'`;

function predicates(w: World): Attempt[] {
  const c = category('predicate inference');
  const v = w.visible[0]!;
  const h = w.hidden[0]!;
  const h2 = w.hidden[5]!;
  const eu = String(w.visible.length);
  const zero = rowsWhere.value('0');
  c.ok(`SELECT count(*) FROM customers`, { check: rowsWhere.value(eu) });
  c.ok(`SELECT count(*) FROM customers WHERE region <> 'eu'`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE region IN ('us', 'apac') OR region IS NULL`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE id = ${h.id}`, { check: zero });
  c.ok(`SELECT id FROM customers WHERE id IN (${w.hidden.map((x) => x.id).join(', ')})`, { check: rowsWhere.count(0) });
  c.ok(`SELECT id FROM customers WHERE id BETWEEN ${h.id - 1} AND ${h.id + 1}`, { check: rowsWhere.count(0) });
  c.ok(`SELECT count(*) FROM customers WHERE full_name = ${q(h.fullName)}`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE full_name LIKE ${q(h.fullName.slice(0, 4) + '%')} AND region = 'us'`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE ssn = ${q(v.ssn)}`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE ssn = ${q(h.ssn)}`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE ssn LIKE ${q(v.ssn.slice(0, 3) + '%')}`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE ssn ILIKE ${q(v.ssn.slice(0, 2) + '%')}`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE ssn SIMILAR TO '[0-9]{3}%'`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE ssn ~ '^[0-9]'`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE ssn ~* ${q('^' + v.ssn.slice(0, 3))}`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE substr(ssn, 1, 3) = ${q(v.ssn.slice(0, 3))}`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE substring(ssn from 1 for 1) BETWEEN '0' AND '9'`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE left(ssn, 3) = ${q(v.ssn.slice(0, 3))}`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE split_part(ssn, '-', 1) <> 'XXX'`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE position(${q(v.ssn.slice(0, 3))} in ssn) > 0`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE starts_with(ssn, ${q(v.ssn.slice(0, 1))})`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE strpos(email, ${q(v.email.split('@')[0]!)}) > 0`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE email LIKE ${q(v.email.split('@')[0]!.slice(0, 3) + '%')}`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE email = ${q(v.email)}`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE length(split_part(email, '@', 1)) <> 5`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE length(ssn) <> 11`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE salary > 0 OR salary < 0 OR salary = 0`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE salary IS NULL`, { check: rowsWhere.value(eu) });
  c.ok(`SELECT count(*) FROM customers WHERE salary::text LIKE '1%'`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE date_of_birth = ${q(v.dateOfBirth)}::date AND ${q(v.dateOfBirth)} NOT LIKE '%-01-01'`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE extract(month from date_of_birth) <> 1 OR extract(day from date_of_birth) <> 1`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE to_char(date_of_birth, 'MM-DD') <> '01-01'`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE md5(ssn) = md5(${q(v.ssn)})`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE sha256(convert_to(ssn, 'UTF8')) = sha256(convert_to(${q(v.ssn)}, 'UTF8'))`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE hashtext(ssn) = hashtext(${q(v.ssn)})`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE ssn = ANY (ARRAY[${w.customers.map((x) => q(x.ssn)).join(', ')}])`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE (ssn, email) IN ((${q(v.ssn)}, ${q(v.email)}))`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE ssn IN (SELECT unnest(ARRAY[${q(v.ssn)}, ${q(h.ssn)}]))`, { check: zero });
  c.ok(`SELECT count(*) FROM customers c JOIN (VALUES (${q(v.ssn)}), (${q(h.ssn)})) x(s) ON c.ssn = x.s`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE to_tsvector('simple', ssn) @@ to_tsquery('simple', ${q(v.ssn.slice(0, 3))})`, { check: zero });
  c.ok(`SELECT id, ssn FROM customers ORDER BY ssn, id LIMIT 1`);
  c.ok(`SELECT id FROM customers ORDER BY salary DESC NULLS LAST, id LIMIT 1`);
  c.ok(`SELECT id FROM customers ORDER BY date_of_birth, id LIMIT 3`);
  c.ok(`SELECT id FROM customers ORDER BY ssn < ${q(v.ssn)}, id LIMIT 1`);
  c.ok(`SELECT id FROM customers ORDER BY email COLLATE "C" DESC, id LIMIT 1`);
  c.ok(`SELECT id FROM customers ORDER BY md5(ssn) LIMIT 1 OFFSET 2`);
  c.ok(`SELECT count(*) FILTER (WHERE ssn < '5'), count(*) FILTER (WHERE email LIKE 'a%'), count(*) FILTER (WHERE salary > 100000) FROM customers`, {
    check: (rows) => (rows[0]?.slice(0, 3).every((x) => x === '0') ? undefined : `filters counted hidden values: ${JSON.stringify(rows)}`),
  });
  c.ok(`SELECT region, ssn, count(*) FROM customers GROUP BY ROLLUP (region, ssn) ORDER BY 1, 2`);
  c.ok(`SELECT email, date_of_birth, count(*) FROM customers GROUP BY CUBE (email, date_of_birth)`);
  c.ok(`SELECT region, salary, count(*) FROM customers GROUP BY GROUPING SETS ((region), (salary), ())`);
  c.ok(`SELECT grouping(region), region, count(*) FROM customers GROUP BY GROUPING SETS ((region), ()) HAVING count(*) > 0`);
  c.ok(`SELECT DISTINCT ON (region) region, full_name, ssn FROM customers ORDER BY region, salary DESC, id`);
  c.ok(`SELECT DISTINCT ON (ssn) ssn, id FROM customers ORDER BY ssn, date_of_birth`);
  c.ok(`SELECT DISTINCT email FROM customers`);
  c.ok(`SELECT count(DISTINCT ssn), count(DISTINCT email), count(DISTINCT date_of_birth) FROM customers`);
  c.ok(`SELECT id, ntile(4) OVER (ORDER BY salary), percent_rank() OVER (ORDER BY date_of_birth), lag(ssn) OVER (ORDER BY id) FROM customers`);
  c.ok(`SELECT id, first_value(email) OVER w, last_value(ssn) OVER w FROM customers WINDOW w AS (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)`);
  c.ok(`SELECT max(ssn), min(ssn), max(email), min(date_of_birth), max(date_of_birth), avg(salary), sum(salary), stddev(salary) FROM customers`);
  c.ok(`SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY salary), mode() WITHIN GROUP (ORDER BY date_of_birth), percentile_disc(0.9) WITHIN GROUP (ORDER BY ssn) FROM customers`);
  c.ok(`SELECT string_agg(ssn, ',' ORDER BY ssn), array_agg(email ORDER BY id), json_agg(date_of_birth), jsonb_object_agg(id, salary) FROM customers`);
  c.ok(`SELECT bit_or(length(ssn)), bool_or(ssn LIKE '9%'), every(email LIKE 'xxxxx@%') FROM customers`, {
    check: (rows) => (rows[0]?.[1] === 'f' && rows[0]?.[2] === 't' ? undefined : `unexpected ${JSON.stringify(rows)}`),
  });
  c.ok(`SELECT a.id, b.id FROM customers a JOIN customers b ON a.ssn = b.ssn AND a.id < b.id`);
  c.ok(`SELECT count(*) FROM customers a JOIN customers b ON a.email = b.email`);
  c.ok(`SELECT c.id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY 1, 2`);
  c.ok(`SELECT o.id, o.customer_id, c.full_name FROM orders o LEFT JOIN customers c ON c.id = o.customer_id ORDER BY o.id`);
  c.ok(`SELECT o.id, c.ssn FROM orders o RIGHT JOIN customers c ON c.id = o.customer_id`);
  c.ok(`SELECT o.customer_id, c.id FROM orders o FULL JOIN customers c ON c.id = o.customer_id`);
  c.ok(`SELECT count(*) FROM orders`);
  c.ok(`SELECT DISTINCT customer_id FROM orders ORDER BY 1`);
  c.ok(`SELECT count(*) FROM orders WHERE customer_id = ${h.id}`, { check: zero });
  c.ok(`SELECT count(*) FROM orders WHERE customer_id IN (${w.hidden.map((x) => x.id).join(', ')})`, { check: zero });
  c.ok(`SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id)`, { check: zero });
  c.ok(`SELECT max(customer_id), min(customer_id), sum(amount) FROM orders`);
  c.ok(`SELECT customer_id FROM orders ORDER BY customer_id DESC LIMIT 1`);
  c.ok(`SELECT (SELECT ssn FROM customers ORDER BY ssn LIMIT 1), (SELECT max(email) FROM customers)`);
  c.ok(`SELECT EXISTS (SELECT 1 FROM customers WHERE id = ${h2.id})`, { check: rowsWhere.value('f') });
  c.ok(`SELECT ${h.id} IN (SELECT id FROM customers)`, { check: rowsWhere.value('f') });
  c.ok(`SELECT ${h.id} = ANY (SELECT id FROM customers)`, { check: rowsWhere.value('f') });
  c.ok(`SELECT ${q(v.ssn)} > ALL (SELECT ssn FROM customers)`);
  c.ok(`SELECT id FROM customers c WHERE ssn = (SELECT ssn FROM customers c2 WHERE c2.id = c.id)`);
  c.ok(`SELECT id FROM customers WHERE id > (SELECT max(id) FROM customers WHERE region = 'eu') LIMIT 1`, { check: rowsWhere.count(0) });
  c.ok(`SELECT count(*) FROM customers WHERE full_name > 'A' AND region >= 'a'`, { check: rowsWhere.value(eu) });
  c.ok(`SELECT count(*) FROM customers WHERE created_at > '2000-01-01' AND region != 'eu'`, { check: zero });
  c.ok(`SELECT id FROM customers LIMIT (SELECT count(*) FROM customers WHERE region = 'us')`, { check: rowsWhere.count(0) });
  c.ok(`SELECT id FROM customers OFFSET (SELECT count(*) FROM customers WHERE region = 'apac')`, { check: rowsWhere.count(w.visible.length) });
  c.ok(`SELECT count(*) FROM customers WHERE ssn IS DISTINCT FROM regexp_replace(ssn, '[0-9](?=.*-)', 'X', 'g')`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE NOT (ssn NOT LIKE 'XXX-XX-%')`, { check: rowsWhere.value(eu) });
  c.ok(`SELECT id, ssn FROM customers WHERE ssn LIKE $$%${v.ssn.slice(-4)}$$`, { check: rowsWhere.count(1) });
  c.ok(`SELECT count(*) FROM customers WHERE ssn COLLATE "C" < ${q(v.ssn)} COLLATE "C"`);
  c.ok(`SELECT count(*) FROM customers WHERE ssn::bytea = ${q(v.ssn)}::bytea`, { check: zero });
  c.ok(`SELECT count(*) FROM customers WHERE reverse(ssn) LIKE ${q(v.ssn.split('').reverse().join('').slice(0, 6) + '%')}`);
  c.ok(`SELECT count(*) FROM customers WHERE translate(ssn, '0123456789', 'aaaaaaaaaa') LIKE 'aaa%'`, { check: zero });
  return c.list;
}

function errors(w: World): Attempt[] {
  const c = category('error-based');
  const v = w.visible[0]!;
  const h = w.hidden[0]!;
  c.ok(`SELECT 1 / (CASE WHEN ssn = ${q(v.ssn)} THEN 0 ELSE 1 END) FROM customers`);
  c.ok(`SELECT 1 / (CASE WHEN ssn = ${q(h.ssn)} THEN 0 ELSE 1 END) FROM customers`);
  c.ok(`SELECT 1 / (CASE WHEN region = 'us' THEN 0 ELSE 1 END) FROM customers`);
  c.ok(`SELECT 1 / (CASE WHEN id = ${h.id} THEN 0 ELSE 1 END) FROM customers`);
  c.ok(`SELECT 1 / (CASE WHEN salary > 50000 THEN 0 ELSE 1 END) FROM customers`);
  c.ok(`SELECT 1 / (CASE WHEN extract(day from date_of_birth) > 1 THEN 0 ELSE 1 END) FROM customers`);
  c.ok(`SELECT 1 / (CASE WHEN email LIKE ${q(v.email.slice(0, 2) + '%')} THEN 0 ELSE 1 END) FROM customers`);
  c.ok(`SELECT id FROM orders WHERE 1 / (CASE WHEN customer_id = ${h.id} THEN 0 ELSE 1 END) = 1`);
  c.error(`SELECT 1 / (SELECT count(*) FROM customers WHERE region = 'us')`);
  c.error(`SELECT 1 / (SELECT count(*) FROM customers WHERE ssn = ${q(v.ssn)})`);
  c.error(`SELECT ssn::int FROM customers`);
  c.error(`SELECT CAST(email AS integer) FROM customers`);
  c.error(`SELECT ssn::numeric FROM customers`);
  c.error(`SELECT ssn::date FROM customers`);
  c.error(`SELECT ssn::uuid FROM customers`);
  c.error(`SELECT ssn::json FROM customers`);
  c.error(`SELECT email::jsonb FROM customers`);
  c.error(`SELECT ssn::inet FROM customers`);
  c.error(`SELECT ssn::boolean FROM customers`);
  c.error(`SELECT ssn::interval FROM customers`);
  c.error(`SELECT ssn::money FROM customers`);
  c.any(`SELECT email::xml FROM customers`);
  c.error(`SELECT xmlparse(document ssn) FROM customers`);
  c.error(`SELECT ssn::regclass FROM customers`);
  c.error(`SELECT ssn::regproc FROM customers`);
  c.error(`SELECT ssn::regtype FROM customers`);
  c.any(`SELECT ssn::tsquery FROM customers WHERE ssn LIKE '%'`);
  c.error(`SELECT (date_of_birth::text || 'x')::date FROM customers`);
  c.error(`SELECT pg_catalog.int4(ssn) FROM customers`);
  c.error(`SELECT to_number(ssn, '999')::int / 0 FROM customers`);
  c.error(`SELECT to_date(email, 'YYYY-MM-DD') FROM customers`);
  c.error(`SELECT to_timestamp(ssn, 'HH24') FROM customers`);
  c.error(`SELECT current_setting(ssn) FROM customers`);
  c.error(`SELECT has_table_privilege(email, 'select') FROM customers`);
  c.error(`SELECT jsonb_path_query('{}', ('$.' || ssn)::jsonpath) FROM customers`);
  c.error(`SELECT jsonb_path_query(to_jsonb(email), 'strict $.a') FROM customers`);
  c.error(`SELECT jsonb_path_query(jsonb_build_object('s', ssn), 'strict $.s.x') FROM customers`);
  c.error(`SELECT json_extract_path_text(ssn::json, 'a') FROM customers`);
  c.error(`SELECT (ssn::jsonb)->>'a' FROM customers`);
  c.error(`SELECT jsonb_build_object(ssn) FROM customers`);
  c.error(`SELECT format('%s %s', ssn) FROM customers`);
  c.error(`SELECT format('%1$s %3$s', email) FROM customers`);
  c.error(`SELECT regexp_match(ssn, '(' || ssn) FROM customers`);
  c.error(`SELECT substring(ssn from -1 for -1) FROM customers`);
  c.error(`SELECT lpad(ssn, 2147483647) FROM customers`);
  c.error(`SELECT repeat(ssn, 2147483647) FROM customers`);
  c.error(`SELECT (ARRAY[ssn])[1:2][3] FROM customers`, {});
  c.error(`SELECT array_fill(ssn, ARRAY[-1]) FROM customers`);
  c.any(`SELECT ('{1,2}'::int[])[id:id][id] FROM customers`);
  c.error(`SELECT (ARRAY[1, 2])[length(email)] / 0 FROM customers`);
  c.error(`SELECT generate_series(1, 2, length(ssn) - length(ssn)) FROM customers`);
  c.ok(`SELECT generate_series(1, salary::int) FROM customers`, { check: rowsWhere.count(0) });
  c.error(`SELECT generate_series(date_of_birth, date_of_birth + 1, interval '0 days') FROM customers`);
  c.error(`SELECT date_of_birth + interval '100000000 years' FROM customers`);
  c.error(`SELECT make_date(extract(year from date_of_birth)::int, extract(day from date_of_birth)::int + 12, 1) FROM customers`);
  c.error(`SELECT chr(id) FROM customers`);
  c.error(`SELECT set_byte('\\x00'::bytea, length(ssn), 1) FROM customers`);
  c.error(`SELECT decode(ssn, 'hex') FROM customers`);
  c.error(`SELECT decode(email, 'base64') FROM customers`);
  c.error(`SELECT convert_from(ssn::bytea, 'NOPE') FROM customers`);
  c.error(`SELECT 'x'::checked_text`, { codes: ['42501'] });
  c.error(`SELECT ssn::checked_text FROM customers`);
  c.error(`SELECT CAST(ssn AS public.checked_text) FROM customers`);
  c.error(`SELECT ssn::varchar(3)::int FROM customers`);
  c.error(`SELECT ssn::char(20)::int FROM customers`);
  c.error(`SELECT 1 FROM customers GROUP BY ssn HAVING 1 / (count(*) - 1) > 0`);
  c.error(`SELECT 1 FROM customers HAVING 1 / (count(*) - ${w.visible.length}) = 0`);
  c.ok(`SELECT 1 FROM customers HAVING 1 / (count(*) - ${w.customers.length}) = 0`);
  c.error(`SELECT numeric_in(ssn::cstring, 0, -1) FROM customers`);
  c.error(`SELECT int4in(email::cstring) FROM customers`);
  c.any(`SELECT pg_catalog.pg_input_error_info(ssn, 'integer') FROM customers`);
  c.error(`SELECT ('x' || ssn)::bit(8) FROM customers`);
  c.error(`SELECT ssn::int8range FROM customers`);
  c.error(`SELECT ARRAY[ssn]::int[] FROM customers`);
  c.error(`SELECT ROW(ssn)::customers FROM customers`);
  c.error(`SELECT json_populate_record(NULL::orders, json_build_object('id', ssn)) FROM customers`);
  c.error(`SELECT jsonb_to_record(jsonb_build_object('a', email)) FROM customers`);
  c.error(`SELECT * FROM customers c, jsonb_to_record(jsonb_build_object('a', c.ssn)) AS x(a int)`);
  c.error(`SELECT xpath('/a/text()', ('<a>' || ssn || '</b>')::xml) FROM customers`);
  c.error(`SELECT ts_headline(email, to_tsquery('a & ')) FROM customers`);
  c.error(`SELECT 1 FROM customers WHERE ssn = ${q(v.ssn)} AND 1 / 0 = 1`);
  c.error(`SELECT CASE WHEN ssn = ${q(v.ssn)} THEN 1 / 0 ELSE 1 END FROM customers`, {});
  c.ok(`SELECT CASE WHEN id = ${h.id} THEN ssn::int ELSE 1 END FROM customers`);
  c.error(`SELECT pg_catalog.pg_size_bytes(ssn) FROM customers`);
  c.error(`SELECT ssn::pg_lsn FROM customers`);
  c.error(`SELECT ssn::macaddr FROM customers`);
  c.error(`SELECT ssn::tid FROM customers`);
  c.error(`SELECT email::point FROM customers`);
  c.error(`SELECT width_bucket(length(ssn), 0, 0, 1) FROM customers`);
  c.error(`SELECT log(0, length(ssn)) FROM customers`);
  c.error(`SELECT sqrt(-length(email)) FROM customers`);
  return c.list;
}

function statistics(w: World): Attempt[] {
  const c = category('statistics');
  const h = w.hidden[0]!;
  for (const rel of ['pg_stats', 'pg_catalog.pg_stats', 'pg_statistic', 'pg_stats_ext', 'pg_stats_ext_exprs', 'pg_statistic_ext_data']) {
    c.refused(`SELECT * FROM ${rel}`);
  }
  c.refused(`SELECT most_common_vals, histogram_bounds FROM pg_stats WHERE tablename = 'customers'`);
  c.refused(`SELECT s.* FROM pg_class k JOIN pg_statistic s ON s.starelid = k.oid`);
  c.refused(`TABLE pg_stats`);
  c.refused(`SELECT (SELECT histogram_bounds::text FROM pg_stats WHERE attname = 'ssn' LIMIT 1)`);
  c.refused(`WITH s AS (SELECT * FROM pg_catalog.pg_stats) SELECT * FROM s`);
  c.refused(`SELECT * FROM pg_stat_activity`);
  c.refused(`SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s`);
  c.refused(`SELECT * FROM pg_stat_get_activity(NULL)`);
  c.refused(`SELECT * FROM pg_stat_statements`, ['42501', '42P01']);
  // Counts only: how many rows the tables hold in all, not which.
  c.ok(`SELECT reltuples, relpages FROM pg_class WHERE relname = 'customers'`);
  c.ok(`SELECT n_live_tup, n_tup_ins FROM pg_stat_user_tables WHERE relname = 'customers'`);
  c.ok(`SELECT pg_stat_get_live_tuples('customers'::regclass), pg_stat_get_tuples_inserted('orders'::regclass)`);
  c.ok(`SELECT pg_relation_size('customers'), pg_total_relation_size('orders'), pg_table_size('customers_part_us')`);
  c.ok(`SELECT * FROM pg_statio_user_tables`);
  c.ok(`SELECT * FROM pg_stat_user_indexes`);
  c.ok(`SELECT * FROM pg_mcv_list_items(NULL)`, {});
  c.ok(`SELECT attname, attstattarget FROM pg_attribute WHERE attrelid = 'customers'::regclass`);
  c.ok(`SELECT stxname, stxkeys FROM pg_statistic_ext`);
  c.ok(`SELECT * FROM information_schema.columns WHERE table_name = 'customers'`);
  // Planner estimates come from statistics over every row, hidden ones included.
  c.refused(`EXPLAIN SELECT 1 FROM customers c, generate_series(1, 1000000) g WHERE c.full_name < ${q(h.fullName)}`);
  c.refused(`EXPLAIN SELECT * FROM orders WHERE customer_id < ${h.id}`);
  c.refused(`EXPLAIN (FORMAT JSON) SELECT id FROM customers WHERE created_at < now()`);
  c.refused(`EXPLAIN (COSTS) SELECT id FROM customers_part_us WHERE full_name = ${q(h.fullName)}`);
  c.refused(`EXPLAIN (COSTS true, FORMAT YAML) SELECT id FROM people WHERE full_name > 'M'`);
  // Even without estimates, the plan shape follows them.
  c.refused(`EXPLAIN (COSTS OFF) SELECT 1 FROM customers c WHERE c.full_name < ${q(h.fullName)}`);
  c.refused(`EXPLAIN (COSTS false, FORMAT JSON) SELECT id FROM customers WHERE created_at < now()`);
  c.refused(`EXPLAIN (COSTS OFF) SELECT 1 FROM products p WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id < ${h.id})`);
  c.refused(`EXPLAIN (COSTS OFF) WITH x AS MATERIALIZED (SELECT * FROM people) SELECT 1 FROM x WHERE full_name > 'M'`);
  c.ok(`EXPLAIN SELECT * FROM products WHERE name < 'm'`);
  return c.list;
}

function wholeRow(w: World): Attempt[] {
  const c = category('whole-row');
  const v = w.visible[0]!;
  for (const sql of [
    `SELECT c FROM customers c`,
    `SELECT c::text FROM customers c`,
    `SELECT CAST(c AS text) FROM customers AS c`,
    `SELECT row_to_json(c) FROM customers c`,
    `SELECT to_jsonb(c) FROM customers c`,
    `SELECT to_json(c.*) FROM customers c`,
    `SELECT json_agg(c) FROM customers c`,
    `SELECT array_agg(c) FROM customers c`,
    `SELECT count(c) FROM customers c`,
    `SELECT c = c FROM customers c`,
    `SELECT c IS NULL FROM customers c`,
    `SELECT ROW(c.*) FROM customers c`,
    `SELECT (c.*)::text FROM customers c`,
    `SELECT c.* FROM customers c`,
    `SELECT * FROM customers`,
    `SELECT (c).ssn FROM customers c`,
    `SELECT (c).card_number FROM customers c`,
    `SELECT format('%s', c) FROM customers c`,
    `SELECT customers FROM customers`,
    `SELECT customers.* FROM customers`,
    `SELECT public.customers FROM public.customers`,
    `SELECT md5(c::text) FROM customers c`,
    `SELECT hashtext(c::text) FROM customers c`,
    `SELECT jsonb_populate_record(NULL::orders, to_jsonb(c)) FROM customers c`,
    `SELECT x FROM (SELECT * FROM customers) x`,
    `SELECT x.* FROM (SELECT * FROM customers_part_eu) x`,
    `SELECT row_to_json(p) FROM customers_part p`,
    `SELECT t FROM (TABLE customers) t`,
    `SELECT card_number(c) FROM customers c`,
    `SELECT ssn(c) FROM customers c`,
    `SELECT c FROM customers c WHERE false`,
    `SELECT 1 FROM customers c WHERE c::text LIKE '%4%'`,
    `SELECT 1 FROM customers c ORDER BY c`,
    `SELECT 1 FROM customers c GROUP BY c`,
    `SELECT DISTINCT c FROM customers c`,
    `SELECT c > ROW(1) FROM customers c`,
    `SELECT * FROM customers c JOIN orders o USING (id)`,
    `SELECT * FROM customers NATURAL JOIN orders`,
    `SELECT j FROM customers c JOIN orders o ON o.customer_id = c.id AS j`,
    `SELECT j FROM (customers c JOIN orders o ON o.customer_id = c.id) AS j`,
  ]) {
    c.error(sql, { codes: ['42501', '42883', '42601', '42P01', '42703'] });
  }
  c.ok(`SELECT p::text FROM people p`, { check: rowsWhere.count(w.visible.length) });
  c.ok(`SELECT row_to_json(p), to_jsonb(p), to_json(p.*) FROM people p`);
  c.ok(`SELECT p FROM people_vip p`, { check: rowsWhere.count(0) });
  c.ok(`SELECT p FROM ONLY people p`);
  c.ok(`SELECT (p).ssn, (p.*).full_name FROM people p`);
  c.ok(`SELECT ROW(id, ssn, email, salary, date_of_birth) FROM customers`);
  c.ok(`SELECT (id, ssn, email)::text FROM customers`);
  c.ok(`SELECT row_to_json(ROW(ssn, email)) FROM customers`);
  c.ok(`SELECT count(*) FROM customers WHERE (id, ssn) = (${v.id}, ${q(v.ssn)})`, { check: rowsWhere.value('0') });
  c.ok(`SELECT count(*) FROM customers WHERE ROW(ssn, email) > ROW('1', 'a')`);
  c.ok(`SELECT s FROM (SELECT id, ssn, email FROM customers) s`);
  c.ok(`SELECT to_jsonb(s) FROM (SELECT id, ssn, salary, date_of_birth FROM customers) s`);
  c.ok(`SELECT o FROM orders o`);
  c.ok(`SELECT to_jsonb(o), o::text FROM orders o`);
  c.ok(`SELECT json_agg(o ORDER BY o.id) FROM orders o`);
  c.ok(`SELECT jsonb_populate_record(NULL::customers, '{}')`);
  c.ok(`SELECT (NULL::customers).card_number`);
  c.ok(`SELECT r FROM region_counts r`);
  c.ok(`SELECT p FROM products p`);
  c.ok(`SELECT x FROM (SELECT o.*, c.ssn FROM orders o JOIN customers c ON c.id = o.customer_id) x`);
  return c.list;
}

function setOperations(w: World): Attempt[] {
  const c = category('set operations');
  const h = w.hidden[0]!;
  c.refused(`SELECT ssn FROM customers UNION SELECT ssn FROM evil.customers`);
  c.refused(`SELECT id, ssn FROM customers UNION ALL SELECT id, card_number FROM customers`);
  c.refused(`SELECT ssn FROM customers EXCEPT SELECT ssn FROM customer_view`);
  c.ok(`SELECT ssn FROM customers UNION ALL SELECT ssn FROM people`);
  c.ok(`SELECT ssn FROM customers UNION SELECT ssn FROM customers_part`);
  c.ok(`SELECT full_name FROM customers EXCEPT SELECT 'x'`, { check: rowsWhere.count(w.visible.length) });
  c.ok(`SELECT full_name FROM customers INTERSECT SELECT ${q(h.fullName)}`, { check: rowsWhere.count(0) });
  c.ok(`VALUES (${q(h.fullName)}) INTERSECT SELECT full_name FROM customers_part`, { check: rowsWhere.count(0) });
  c.ok(`SELECT id FROM customers UNION SELECT customer_id FROM orders`);
  c.ok(`SELECT id FROM customers_part_us UNION ALL SELECT id FROM archive.customers_part_apac UNION ALL SELECT id FROM customers_part_other`, { check: rowsWhere.count(0) });
  c.ok(`(SELECT ssn FROM customers ORDER BY ssn LIMIT 1) UNION (SELECT email FROM customers ORDER BY 1 LIMIT 1)`);
  c.ok(`SELECT * FROM (SELECT id FROM customers UNION SELECT id FROM customers_part) s WHERE id = ${h.id}`, { check: rowsWhere.count(0) });
  c.ok(`SELECT ${h.id} EXCEPT SELECT id FROM customers`, { check: rowsWhere.count(1) });
  c.ok(`SELECT ssn FROM customers INTERSECT ALL SELECT ssn FROM people_vip`, { check: rowsWhere.count(0) });
  c.ok(`SELECT salary FROM customers UNION SELECT price FROM products ORDER BY 1 NULLS FIRST`);
  c.ok(`SELECT date_of_birth FROM customers UNION SELECT date_of_birth FROM customers_part ORDER BY 1`);
  c.ok(`SELECT count(*) FROM (SELECT ssn FROM customers INTERSECT SELECT ssn FROM people) x`);
  c.ok(`SELECT id, ssn FROM customers WHERE id IN (SELECT id FROM people UNION SELECT id FROM people_vip)`);
  c.ok(`SELECT full_name FROM people_vip UNION SELECT full_name FROM customers_part_us`, { check: rowsWhere.count(0) });
  c.refused(`SELECT 1 UNION SELECT count(*) FROM customer_mv`);
  return c.list;
}

function nesting(w: World): Attempt[] {
  const c = category('CTE, LATERAL and nesting');
  const h = w.hidden[0]!;
  c.refused(`WITH customers AS (SELECT * FROM evil.customers) SELECT ssn FROM customers`);
  c.refused(`WITH x AS (SELECT card_number FROM customers) SELECT 1`);
  c.refused(`WITH x AS (SELECT * FROM customers) SELECT id FROM x`);
  c.ok(`WITH x AS (SELECT id, ssn FROM customers) SELECT * FROM x`);
  c.ok(`WITH customers AS (SELECT id, ssn, email FROM customers) SELECT * FROM customers`);
  c.ok(`WITH RECURSIVE customers(id, ssn) AS (SELECT 1, 'x' UNION ALL SELECT id + 1, ssn FROM customers WHERE id < 3) SELECT * FROM customers`);
  c.ok(`WITH RECURSIVE r AS (SELECT id, ssn FROM customers UNION ALL SELECT id, ssn FROM r WHERE false) SELECT * FROM r`);
  c.ok(`WITH RECURSIVE r(n, s) AS (SELECT 1, (SELECT max(ssn) FROM customers) UNION ALL SELECT n + 1, s FROM r WHERE n < 3) SELECT * FROM r`);
  c.ok(`WITH RECURSIVE walk(id, depth) AS (SELECT id, 0 FROM customers WHERE id = ${w.visible[0]!.id} UNION ALL SELECT c.id, depth + 1 FROM walk JOIN customers c ON c.id > walk.id WHERE depth < 2) SELECT count(*) FROM walk`);
  c.ok(`WITH RECURSIVE t(i) AS (SELECT ${h.id} UNION ALL SELECT i + 1 FROM t WHERE i < ${h.id + 2}) SELECT c.full_name FROM t JOIN customers c ON c.id = t.i`, { check: rowsWhere.count(0) });
  c.ok(`WITH a AS (SELECT id, email FROM customers), b AS (SELECT * FROM a WHERE email LIKE '%@%') SELECT * FROM b`);
  c.refused(`WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a`, ['42P01']);
  c.ok(`WITH d AS MATERIALIZED (SELECT id, email FROM customers) SELECT * FROM d`);
  c.ok(`WITH d AS NOT MATERIALIZED (SELECT id, ssn FROM customers) SELECT * FROM d WHERE ssn LIKE '9%'`, { check: rowsWhere.count(0) });
  c.ok(`WITH RECURSIVE s(id) AS (SELECT id FROM customers UNION ALL SELECT id FROM s WHERE false) SEARCH DEPTH FIRST BY id SET ord SELECT * FROM s`);
  c.ok(`WITH RECURSIVE s(id) AS (SELECT id FROM customers UNION SELECT id FROM s) CYCLE id SET is_cycle USING path SELECT * FROM s`);
  c.ok(`SELECT * FROM (WITH x AS (SELECT id, ssn FROM customers) SELECT * FROM x) s`);
  c.ok(`SELECT (WITH x AS (SELECT ssn FROM customers ORDER BY 1 LIMIT 1) SELECT ssn FROM x)`);
  c.ok(`WITH x AS (SELECT id, ssn FROM customers) SELECT * FROM x UNION SELECT id, ssn FROM people`);
  c.ok(`SELECT c.id, x.* FROM customers c, LATERAL (SELECT c.ssn, c.salary, c.email) x`);
  c.ok(`SELECT o.id, x.ssn FROM orders o LEFT JOIN LATERAL (SELECT ssn FROM customers c WHERE c.id = o.customer_id) x ON true`);
  c.ok(`SELECT * FROM generate_series(0, 2) g, LATERAL (SELECT ssn FROM customers ORDER BY id OFFSET g LIMIT 1) x`);
  c.ok(`SELECT * FROM (VALUES (${h.id})) v(i) JOIN LATERAL (SELECT full_name FROM customers WHERE id = v.i) x ON true`, { check: rowsWhere.count(0) });
  c.ok(`SELECT * FROM (VALUES (${h.id})) v(i), LATERAL (SELECT full_name FROM customers_part_us WHERE id = v.i) x`, { check: rowsWhere.count(0) });
  c.ok(`SELECT c.id, u FROM customers c CROSS JOIN LATERAL unnest(ARRAY[c.ssn, c.email]) u`);
  c.refused(`SELECT * FROM customers c CROSS JOIN LATERAL (SELECT c.card_number) x`);
  c.refused(`SELECT x.* FROM customers c, LATERAL (SELECT c.*) x`);
  c.ok(`SELECT * FROM (SELECT * FROM (SELECT id, ssn FROM (SELECT id, ssn, email FROM customers) a) b) c`);
  c.ok(`SELECT (SELECT (SELECT max(ssn) FROM customers WHERE id > o.id) FROM orders o LIMIT 1)`);
  c.ok(`SELECT id FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id AND c.ssn LIKE '9%')`, { check: rowsWhere.count(0) });
  c.ok(`SELECT ARRAY(SELECT ssn FROM customers ORDER BY 1)`);
  c.ok(`SELECT id FROM customers WHERE id = ANY (ARRAY(SELECT customer_id FROM orders))`);
  c.ok(`SELECT (SELECT count(*) FROM customers c2 WHERE c2.ssn > c.ssn) FROM customers c`);
  // SQL/JSON constructor syntax is PostgreSQL 16+: the older server rejects the rewritten text.
  c.any(`SELECT json_array((SELECT ssn FROM customers LIMIT 1))`);
  c.ok(`SELECT c.id, c.ssn FROM customers c WHERE c.id IN (SELECT customer_id FROM orders WHERE amount > (SELECT avg(salary) FROM customers))`, { check: rowsWhere.count(0) });
  c.refused(`WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d`);
  c.refused(`WITH u AS (UPDATE customers SET full_name = full_name RETURNING ssn) SELECT * FROM u`, ['42501', '0A000']);
  c.refused(`WITH i AS (INSERT INTO products VALUES (3, 'x', 1) RETURNING *) SELECT 1`);
  c.ok(`SELECT * FROM ROWS FROM (generate_series(1, 2), unnest(ARRAY['a'])) AS r(a, b)`);
  c.ok(`SELECT c.id, x.* FROM customers c, json_to_record(json_build_object('s', c.ssn)) AS x(s text)`);
  c.any(`SELECT x.* FROM customers c, XMLTABLE('/r' PASSING xmlelement(name r, c.ssn) COLUMNS v text PATH '.') x`);
  c.any(`SELECT jt.* FROM customers c, JSON_TABLE(jsonb_build_object('e', c.email), '$' COLUMNS (e text PATH '$.e')) jt`);
  c.ok(`SELECT (SELECT string_agg(ssn, ',') FROM customers) FROM generate_series(1, 2)`);
  return c.list;
}

function searchPath(w: World): Attempt[] {
  const c = category('search_path');
  for (const sql of [
    `SET search_path = evil`,
    `SET search_path TO evil, public`,
    `SET SESSION search_path = evil`,
    `SET "search_path" = evil`,
    `SET SEARCH_PATH = evil`,
    `SET Search_Path TO 'evil'`,
    `SET SCHEMA 'evil'`,
    `SET search_path FROM CURRENT`,
    `SET search_path TO DEFAULT`,
    `SET search_path = pg_temp, public`,
    `RESET search_path`,
    `RESET ALL`,
    `SELECT set_config('search_path', 'evil', false)`,
    `SELECT pg_catalog.set_config('search_path', 'evil, public', true)`,
    `SELECT "set_config"('search_path', 'evil', false)`,
    `SELECT set_config(x, 'evil', false) FROM (VALUES ('search_path')) v(x)`,
    `SELECT 1 FROM pg_settings WHERE set_config('search_path', 'evil', false) IS NOT NULL`,
    `UPDATE pg_settings SET setting = 'evil' WHERE name = 'search_path'`,
    `SET ROLE pgward_test`,
    `SET ROLE NONE`,
    `RESET ROLE`,
    `SET SESSION AUTHORIZATION DEFAULT`,
    `RESET SESSION AUTHORIZATION`,
    `SELECT set_config('role', 'pgward_test', false)`,
    `ALTER ROLE scram_user SET search_path = evil`,
    `ALTER DATABASE bypass_corpus SET search_path = evil`,
    `CREATE TEMP TABLE customers AS SELECT * FROM evil.customers`,
    `CREATE TEMP VIEW customers AS SELECT * FROM evil.customers`,
    `CREATE TEMP TABLE t (a int)`,
    `CREATE TABLE pg_temp.customers (id int)`,
    `SELECT * INTO TEMP customers_copy FROM customers`,
    `CREATE SCHEMA scram_user`,
    `SELECT * FROM evil.customers`,
    `SELECT ssn FROM evil.customers`,
    `SELECT count(*) FROM evil.customers`,
    `SELECT lower(ssn) FROM customers`,
    `SELECT lower('x')`,
    `SELECT public.leak_ssn(${1})`,
    `SELECT leak_ssn(id) FROM customers`,
  ]) {
    c.error(sql, { codes: ['42501', '0A000', '42P01', '42883'] });
  }
  c.refused(`BEGIN; SET LOCAL search_path = evil; COMMIT`, ['42501'], { multi: true });
  c.refused(`SELECT * FROM pg_temp.customers`, ['42P01']);
  c.refused(`SELECT ssn FROM other_db.public.customers`, ['0A000']);
  c.ok(`SHOW search_path`, { check: rowsWhere.value('"$user", public') });
  c.ok(`SELECT current_setting('search_path'), current_schemas(true)`);
  c.ok(`SELECT id, ssn FROM bypass_corpus.public.customers`);
  c.ok(`SELECT bypass_corpus.public.customers.ssn FROM public.customers`, {});
  c.ok(`SELECT pg_catalog.lower(ssn) FROM customers`);
  c.ok(`SELECT pg_catalog.lower(full_name) FROM customers WHERE region = 'us'`, { check: rowsWhere.count(0) });
  c.any(`DISCARD ALL`);
  c.ok(`SHOW search_path`, { check: rowsWhere.value('"$user", public') });
  c.ok(`SELECT id, ssn FROM customers ORDER BY id`, { check: rowsWhere.count(w.visible.length) });
  return c.list;
}

function identifiers(w: World): Attempt[] {
  const c = category('quoted and escaped identifiers');
  const v = w.visible[0]!;
  c.ok(`SELECT "ssn", "email" FROM "customers"`);
  c.ok(`SELECT U&"\\0073sn" FROM U&"\\0063ustomers"`);
  c.ok(`SELECT U&"!0073sn" UESCAPE '!' FROM U&"cust!006Fmers" UESCAPE '!'`);
  c.ok(`SELECT "public"."customers"."ssn" FROM "public"."customers"`);
  c.ok(`SELECT public.customers.ssn, customers.email FROM public.customers`);
  c.ok(`SELECT SSN, EMAIL FROM PUBLIC.CUSTOMERS`);
  c.ok(`SELECT ssn AS "card_number" FROM customers`);
  c.ok(`SELECT d, a FROM customers AS c(a, b, e, d)`);
  c.ok(`SELECT x.ssn FROM customers x WHERE x.ssn = U&'\\0039'`, { check: rowsWhere.count(0) });
  c.ok(`SELECT count(*) FROM customers WHERE ssn = U&${q(v.ssn.replace(/\d/g, (d) => `\\003${d}`))}`, { check: rowsWhere.value('0') });
  c.ok(`SELECT count(*) FROM customers WHERE ssn = E${q(v.ssn.replace(/\d/g, (d) => `\\x3${d}`))}`, { check: rowsWhere.value('0') });
  c.error(`SELECT "SSN" FROM customers`, { codes: ['42703'] });
  c.error(`SELECT ssn FROM "Customers"`, { codes: ['42P01'] });
  c.error(`SELECT ssn FROM "public.customers"`, { codes: ['42P01'] });
  for (const sql of [
    `SELECT U&"\\0063ard_number" FROM customers`,
    `SELECT U&"!0063ard_number" UESCAPE '!' FROM customers`,
    `SELECT "card_number" FROM customers`,
    `SELECT "card_number" FROM "public"."customers"`,
    `SELECT CARD_NUMBER FROM customers`,
    `SELECT public.customers.card_number FROM public.customers`,
    `SELECT bypass_corpus.public.customers.card_number FROM customers`,
    `SELECT g FROM customers AS c(a, b, cc, d, e, f, g)`,
    `SELECT x.card_number FROM customers x(a, card_number)`,
    `SELECT card_number FROM customers x(card_number)`,
    `SELECT c.card_number FROM customers_part_us c`,
    `SELECT card_number FROM archive.customers_part_apac`,
    `SELECT "card_number" FROM U&"\\0063ustomers_part"`,
  ]) {
    c.error(sql, { codes: ['42501', '42702', '42703'] });
  }
  c.error(`SELECT ${'s'.repeat(70)} FROM customers`, { codes: ['42703'] });
  c.error(`SELECT ssn FROM ${'c'.repeat(70)}`, { codes: ['42P01'] });
  c.error(`SELECT card_number${'_'.repeat(60)} FROM customers`, { codes: ['42703', '42501'] });
  c.ok(`SELECT ssn AS ${'a'.repeat(70)} FROM customers`);
  // Identifiers longer than 63 bytes are truncated by the server: two spellings, one alias.
  const alias = (tail: string): string => `${'t'.repeat(63)}${tail}`;
  c.any(`SELECT ${alias('a')}.ssn FROM customers AS ${alias('b')}`);
  c.error(`SELECT ${alias('a')}.card_number FROM customers AS ${alias('b')}`, { codes: ['42501', '42703', '42P01'] });
  c.error(`SELECT ${alias('a')} FROM customers AS ${alias('b')}`, { codes: ['42501', '42703'] });
  c.any(`WITH ${alias('x')} AS (SELECT id, ssn FROM customers) SELECT * FROM ${alias('y')}`);
  return c.list;
}

function lexical(): Attempt[] {
  const c = category('comments, quoting, multi-statement');
  c.ok(`SELECT ssn /* card_number */ FROM customers`);
  c.ok(`SELECT ssn -- ; SELECT card_number FROM customers\nFROM customers`);
  c.ok(`SELECT /* /* nested */ card_number */ ssn FROM customers`);
  c.refused(`SELECT /* */ card_number FROM customers`);
  c.refused(`SELECT /* /* nested */ */ card_number FROM customers`);
  c.ok(`SELECT $$card_number$$, ssn FROM customers`);
  c.refused(`SELECT $a$ ' $a$, card_number FROM customers`);
  c.ok(`SELECT $_$ $$ card_number $$ $_$, email FROM customers`);
  c.ok(`SELECT E'\\' card_number', ssn FROM customers`);
  c.ok(`SELECT 'it''s; SELECT card_number FROM customers', ssn FROM customers`);
  c.ok(`SELECT 'a'\n'b', ssn FROM customers`);
  c.refused(`SELECT 'x;' || ssn FROM customers; SELECT card_number FROM customers`, ['42501'], { multi: true });
  c.refused(`SELECT 1; SELECT card_number FROM customers`, ['42501'], { multi: true });
  c.refused(`SELECT ';'; SELECT * FROM customers`, ['42501'], { multi: true });
  c.refused(`SELECT 1; SET search_path = evil; SELECT 2`, ['42501'], { multi: true });
  c.refused(`SELECT ssn FROM customers; SELECT ssn FROM evil.customers`, ['42501'], { multi: true });
  c.ok(`SELECT ssn FROM customers; SELECT email FROM customers`, { multi: true });
  c.ok(`BEGIN; SELECT ssn FROM customers; COMMIT`, { multi: true });
  c.ok(`SELECT 1;;; SELECT 2`, { multi: true });
  c.ok(`SELECT 'x'';SELECT card_number FROM customers;--'`);
  c.ok(`SELECT ssn FROM customers -- trailing comment`);
  c.ok(`SELECT ssn FROM customers /* unterminated? no */`);
  c.error(`SELECT ssn FROM customers /* unterminated`, { codes: ['42601'], noPsql: true });
  c.error(`SELECT 'unterminated FROM customers`, { codes: ['42601'], noPsql: true });
  c.error(`SELECT $$unterminated FROM customers`, { codes: ['42601'], noPsql: true });
  c.ok(`SELECT ssn FROM customers WHERE 'x' = $q$x$q$`);
  c.ok(`SELECT ssn FROM customers WHERE email <> $tag$'; SELECT card_number FROM customers; --$tag$`);
  c.error(`SELECT 1/0; SELECT ssn FROM customers`, { multi: true, codes: ['22012'] });
  c.refused(`SELECT ssn FROM customers; SELEC card_number FROM customers`, ['42601'], { multi: true });
  c.refused(`SELECT 1 \\; SELECT card_number FROM customers`, ['42601', '42501'], { multi: true });
  c.ok(`   \n\t SELECT ssn FROM customers \n\n `);
  c.ok(`SELECT ssn FROM customers;`);
  c.any(``);
  c.any(`;`, { multi: true });
  c.any(`-- only a comment`);
  c.error(`FOO BAR`, { codes: ['42601'] });
  c.error(`SELEC 1`, { codes: ['42601'] });
  c.error(`IDENTIFY_SYSTEM`, { codes: ['42601'] });
  c.error(`START_REPLICATION SLOT s LOGICAL 0/0`, { codes: ['42601'] });
  c.error(`BASE_BACKUP`, { codes: ['42601'] });
  c.error(`CREATE_REPLICATION_SLOT s LOGICAL test_decoding`, { codes: ['42601'] });
  c.error(`TIMELINE_HISTORY 1`, { codes: ['42601'] });
  return c.list;
}

function encodings(w: World): Attempt[] {
  const c = category('encodings and string syntax');
  const v = w.visible[0]!;
  for (const sql of [
    `SET client_encoding = 'SJIS'`,
    `SET client_encoding TO 'BIG5'`,
    `SET client_encoding = 'GBK'`,
    `SET client_encoding = 'SQL_ASCII'`,
    `SET client_encoding = 'LATIN1'`,
    `SET NAMES 'SJIS'`,
    `SET NAMES 'GB18030'`,
    `SET client_encoding TO 'UTF8', 'SJIS'`,
    `SET client_encoding = sjis`,
    `SET SESSION client_encoding = 'JOHAB'`,
    `SET standard_conforming_strings = off`,
    `SET standard_conforming_strings TO false`,
    `SET standard_conforming_strings = 0`,
    `SET LOCAL standard_conforming_strings = off`,
    `SELECT set_config('client_encoding', 'SJIS', false)`,
    `SELECT set_config('standard_conforming_strings', 'off', false)`,
  ]) {
    c.refused(sql);
  }
  c.ok(`SET client_encoding TO 'UTF8'`);
  c.ok(`SET client_encoding = 'utf-8'`);
  c.ok(`SET NAMES 'UNICODE'`);
  c.ok(`SET client_encoding = DEFAULT`);
  c.ok(`RESET client_encoding`);
  c.ok(`SET standard_conforming_strings = on`);
  c.ok(`SET standard_conforming_strings TO DEFAULT`);
  c.ok(`RESET standard_conforming_strings`);
  c.ok(`SHOW client_encoding`);
  c.ok(`SHOW standard_conforming_strings`, { check: rowsWhere.value('on') });
  c.any(`SET escape_string_warning = off`);
  c.any(`SET backslash_quote = on`);
  c.error(`SELECT 'a\\'' , ssn FROM customers`, { codes: ['42601'], noPsql: true });
  c.ok(`SELECT E'\\x27; SELECT card_number FROM customers --', ssn FROM customers`);
  c.ok(`SELECT E'\\'', ssn FROM customers WHERE E'\\\\' = '\\'`);
  c.ok(`SELECT U&'!0027' UESCAPE '!', ssn FROM customers`);
  c.ok(`SELECT U&'\\0027 ; SELECT card_number FROM customers', ssn FROM customers`);
  c.ok(`SELECT U&'\\+01F600', email FROM customers`);
  c.ok(`SELECT count(*) FROM customers WHERE ssn = E'${v.ssn.replace(/-/g, '\\055')}'`, { check: rowsWhere.value('0') });
  c.ok(`SELECT count(*) FROM customers WHERE email LIKE E'${v.email.split('@')[0]!.slice(0, 2)}\\u0025'`, { check: rowsWhere.value('0') });
  c.ok(`SELECT B'1010', X'FF', N'national', ssn FROM customers`);
  c.ok(`SELECT 'é' || ssn, 'ü' FROM customers WHERE full_name <> 'Ürsula'`);
  c.ok(`SELECT convert_to(ssn, 'SJIS'), convert_to(email, 'BIG5') FROM customers`);
  c.ok(`SELECT convert(convert_to(ssn, 'UTF8'), 'UTF8', 'LATIN1') FROM customers`);
  c.ok(`SELECT encode(convert_to(ssn, 'UTF8'), 'escape') FROM customers`);
  c.ok(`SELECT "é", ssn FROM customers, (VALUES (1)) v("é")`);
  return c.list;
}

function prepared(w: World): Attempt[] {
  const c = category('prepared statements');
  const h = w.hidden[0]!;
  c.ok(`PREPARE corpus_p1(text) AS SELECT id, ssn, email FROM customers WHERE ssn LIKE $1 OR email LIKE $1`);
  c.ok(`EXECUTE corpus_p1('%')`, { check: rowsWhere.count(w.visible.length) });
  c.ok(`EXECUTE corpus_p1('9%')`, { check: rowsWhere.count(0) });
  c.ok(`EXECUTE corpus_p1(${q(h.ssn)})`, { check: rowsWhere.count(0) });
  c.error(`EXECUTE corpus_p1((SELECT ssn FROM customers LIMIT 1))`);
  c.error(`EXECUTE corpus_p1((SELECT card_number FROM customers LIMIT 1))`, { codes: ['42501'] });
  c.refused(`EXPLAIN (COSTS OFF) EXECUTE corpus_p1('%')`);
  c.refused(`EXPLAIN EXECUTE corpus_p1('%')`);
  c.refused(`CREATE TABLE stolen AS EXECUTE corpus_p1('%')`);
  c.ok(`DEALLOCATE corpus_p1`);
  c.ok(`PREPARE corpus_p2 AS SELECT count(*) FROM customers WHERE id = ${h.id}`);
  c.ok(`EXECUTE corpus_p2`, { check: rowsWhere.value('0') });
  c.ok(`DEALLOCATE PREPARE corpus_p2`);
  c.refused(`PREPARE corpus_p3 AS SELECT card_number FROM customers`);
  c.error(`EXECUTE corpus_p3`, { codes: ['26000'] });
  c.refused(`PREPARE corpus_p4 AS SELECT * FROM evil.customers`);
  c.refused(`PREPARE corpus_p5 AS SELECT c FROM customers c`);
  c.refused(`PREPARE corpus_p6(int) AS UPDATE orders SET amount = 0 WHERE id = $1`);
  c.error(`PREPARE corpus_p7 AS EXPLAIN SELECT 1`, { codes: ['42601'] });
  c.ok(`PREPARE corpus_p8(int) AS SELECT full_name, ssn FROM customers_part WHERE id = $1`);
  c.ok(`EXECUTE corpus_p8(${h.id})`, { check: rowsWhere.count(0) });
  c.ok(`DEALLOCATE corpus_p8`);
  c.ok(`PREPARE corpus_p9 AS SELECT $1::text AS x`);
  c.error(`EXECUTE corpus_p9((SELECT ssn FROM customers LIMIT 1))`);
  c.ok(`EXECUTE corpus_p9('x')`);
  c.ok(`DEALLOCATE ALL`);
  c.ok(`PREPARE corpus_p10 AS SELECT id FROM customers; EXECUTE corpus_p10; DEALLOCATE corpus_p10`, { multi: true });
  return c.list;
}

function cursors(w: World): Attempt[] {
  const c = category('cursors');
  const h = w.hidden[0]!;
  const tx = { tx: true };
  c.ok(`DECLARE corpus_c1 CURSOR FOR SELECT id, ssn, email FROM customers; FETCH ALL FROM corpus_c1; CLOSE corpus_c1`, { ...tx, multi: true });
  c.ok(`DECLARE corpus_c2 SCROLL CURSOR WITH HOLD FOR SELECT id, ssn, salary, date_of_birth FROM customers ORDER BY id`);
  c.ok(`FETCH ABSOLUTE 3 FROM corpus_c2`);
  c.ok(`MOVE LAST IN corpus_c2`);
  c.ok(`FETCH BACKWARD 2 FROM corpus_c2`);
  c.ok(`FETCH PRIOR FROM corpus_c2`);
  c.ok(`FETCH RELATIVE -1 FROM corpus_c2`);
  c.ok(`FETCH ALL IN corpus_c2`);
  c.ok(`MOVE ABSOLUTE 0 IN corpus_c2`);
  c.ok(`FETCH FORWARD ALL FROM corpus_c2`);
  c.ok(`CLOSE corpus_c2`);
  c.ok(`DECLARE corpus_c3 BINARY CURSOR WITH HOLD FOR SELECT id, ssn, email, salary FROM customers`);
  c.ok(`FETCH ALL FROM corpus_c3`);
  c.ok(`CLOSE corpus_c3`);
  c.ok(`DECLARE corpus_c4 NO SCROLL CURSOR FOR SELECT full_name FROM customers WHERE id = ${h.id}; FETCH 10 FROM corpus_c4`, { ...tx, multi: true, check: rowsWhere.count(0) });
  c.ok(`DECLARE corpus_c5 CURSOR FOR SELECT o.id, c.ssn FROM orders o JOIN customers c ON c.id = o.customer_id; FETCH ALL corpus_c5`, { ...tx, multi: true });
  c.ok(`DECLARE corpus_c6 CURSOR FOR SELECT id, full_name FROM customers_part_us; FETCH ALL FROM corpus_c6`, { ...tx, multi: true, check: rowsWhere.count(0) });
  c.refused(`DECLARE corpus_c7 CURSOR FOR SELECT card_number FROM customers`, ['42501'], tx);
  c.refused(`DECLARE corpus_c8 CURSOR WITH HOLD FOR SELECT * FROM customers_part`);
  c.refused(`DECLARE corpus_c9 CURSOR WITH HOLD FOR SELECT ctid, id FROM customers`);
  c.refused(`DECLARE corpus_c10 CURSOR WITH HOLD FOR SELECT * FROM evil.customers`);
  c.refused(`DECLARE corpus_c11 CURSOR WITH HOLD FOR SELECT * FROM customer_view`);
  c.any(`DECLARE corpus_c12 CURSOR FOR SELECT id FROM customers FOR UPDATE; FETCH 1 FROM corpus_c12; UPDATE customers SET full_name = 'x' WHERE CURRENT OF corpus_c12`, { ...tx, multi: true });
  c.refused(`UPDATE customers SET full_name = full_name WHERE CURRENT OF corpus_c2`, ['42501', '0A000']);
  c.refused(`SELECT * FROM pg_cursors`);
  c.refused(`SELECT name, statement FROM pg_catalog.pg_cursor()`);
  c.error(`FETCH ALL FROM no_such_cursor`, { codes: ['34000'] });
  c.ok(`DECLARE corpus_c13 CURSOR FOR WITH x AS (SELECT ssn FROM customers) SELECT * FROM x; FETCH ALL FROM corpus_c13`, { ...tx, multi: true });
  c.ok(`DECLARE corpus_c14 CURSOR FOR SELECT ssn FROM customers UNION SELECT email FROM customers; MOVE 2 corpus_c14; FETCH NEXT corpus_c14`, { ...tx, multi: true });
  c.refused(`DECLARE corpus_c15 CURSOR FOR SELECT row_to_json(c) FROM customers c`, ['42501'], tx);
  c.ok(`DECLARE corpus_c16 CURSOR FOR SELECT p FROM people p; FETCH ALL FROM corpus_c16`, { ...tx, multi: true });
  c.ok(`DECLARE "Corpus C17" CURSOR WITH HOLD FOR SELECT ssn FROM customers; FETCH 2 FROM "Corpus C17"; CLOSE "Corpus C17"`, { multi: true });
  c.ok(`CLOSE ALL`);
  return c.list;
}

function copy(w: World): Attempt[] {
  const c = category('COPY');
  const copy = { copy: true };
  c.ok(`COPY (SELECT id, ssn, email, salary, date_of_birth FROM customers) TO STDOUT`, copy);
  c.ok(`COPY (SELECT id, ssn FROM customers ORDER BY ssn) TO STDOUT WITH (FORMAT csv, HEADER, FORCE_QUOTE *)`, copy);
  c.ok(`COPY (SELECT * FROM orders) TO STDOUT (FORMAT binary)`, copy);
  c.ok(`COPY (WITH x AS (SELECT ssn FROM customers) SELECT * FROM x) TO STDOUT`, copy);
  c.ok(`COPY (SELECT ssn FROM customers UNION SELECT ssn FROM people) TO STDOUT`, copy);
  c.ok(`COPY (SELECT p::text FROM people p) TO STDOUT`, copy);
  c.ok(`COPY customers (id, ssn, email) TO STDOUT`, copy);
  c.ok(`COPY customers (id, "ssn", date_of_birth, salary) TO STDOUT WITH (FORMAT csv, HEADER)`, copy);
  c.ok(`COPY customers (id, ssn) TO STDOUT (FORMAT binary)`, copy);
  c.ok(`COPY BINARY customers (id, ssn) TO STDOUT`, copy);
  c.ok(`COPY customers (id, email) TO STDOUT WITH CSV HEADER`, copy);
  c.ok(`COPY public.customers (full_name) TO STDOUT`, copy);
  c.ok(`COPY orders TO STDOUT`, copy);
  c.ok(`COPY orders (customer_id) TO STDOUT (FORMAT text, DELIMITER '|')`, copy);
  c.ok(`COPY customers_part_us (id, full_name) TO STDOUT`, copy);
  c.ok(`COPY archive.customers_part_apac (id, ssn) TO STDOUT`, copy);
  c.ok(`COPY customers_part_eu (id, ssn, salary) TO STDOUT`, copy);
  c.ok(`COPY people TO STDOUT`, copy);
  c.ok(`COPY people_vip TO STDOUT`, copy);
  c.ok(`COPY products TO STDOUT`, copy);
  c.refused(`COPY customers TO STDOUT`, ['42501'], copy);
  c.refused(`COPY customers (card_number) TO STDOUT`, ['42501'], copy);
  c.refused(`COPY customers (id, card_number) TO STDOUT (FORMAT csv)`, ['42501'], copy);
  c.refused(`COPY customers_part TO STDOUT`, ['42809', '42501'], copy);
  c.refused(`COPY customers_part_us TO STDOUT`, ['42501'], copy);
  c.refused(`COPY customer_view TO STDOUT`, ['42501', '42809'], copy);
  c.refused(`COPY region_counts TO STDOUT`, ['42809', '42501'], copy);
  c.refused(`COPY customer_mv TO STDOUT`, ['42501', '42809'], copy);
  c.refused(`COPY evil.customers TO STDOUT`, ['42501'], copy);
  c.refused(`COPY (SELECT * FROM evil.customers) TO STDOUT`, ['42501'], copy);
  c.refused(`COPY (SELECT c::text FROM customers c) TO STDOUT`, ['42501'], copy);
  c.refused(`COPY (SELECT ctid, id FROM customers) TO STDOUT`, ['42501'], copy);
  c.refused(`COPY customers (id, ssn) TO '/tmp/pgward-corpus-leak'`, ['42501'], copy);
  c.refused(`COPY (SELECT 1) TO PROGRAM 'cat'`, ['42501'], copy);
  c.refused(`COPY customers FROM STDIN`, ['42501', '0A000'], copy);
  c.refused(`COPY orders FROM STDIN`, ['42501'], copy);
  c.refused(`COPY products FROM '/etc/hostname'`, ['42501'], copy);
  c.error(`COPY customers (nope) TO STDOUT`, { ...copy, codes: ['42703'] });
  c.error(`COPY "Customers" (id) TO STDOUT`, { ...copy, codes: ['42P01'] });
  c.error(`COPY (SELECT ssn::int FROM customers) TO STDOUT`, copy);
  c.ok(`COPY (SELECT id FROM customers WHERE id = ${w.hidden[0]!.id}) TO STDOUT`, copy);
  return c.list;
}

function explain(): Attempt[] {
  const c = category('EXPLAIN');
  c.refused(`EXPLAIN (COSTS OFF) SELECT ssn FROM customers WHERE ssn = '123-45-6789'`);
  c.refused(`EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM orders`);
  c.refused(`EXPLAIN (COSTS OFF, FORMAT JSON) SELECT id, email FROM customers`);
  c.refused(`EXPLAIN (COSTS OFF, FORMAT XML) SELECT id, email FROM customers_part`);
  c.refused(`EXPLAIN (COSTS OFF, FORMAT YAML, VERBOSE) SELECT p FROM people p`);
  c.refused(`EXPLAIN (COSTS OFF) DECLARE x CURSOR FOR SELECT ssn FROM customers`);
  c.refused(`EXPLAIN (COSTS OFF, SUMMARY) SELECT 1 FROM customers`);
  c.refused(`EXPLAIN (COSTS OFF, SETTINGS) SELECT id FROM customers`);
  c.refused(`EXPLAIN (COSTS OFF, GENERIC_PLAN) SELECT id FROM customers WHERE id = $1`);
  c.refused(`EXPLAIN (COSTS OFF, BUFFERS) SELECT id FROM customers`);
  c.refused(`EXPLAIN ANALYZE SELECT id FROM customers`);
  c.refused(`EXPLAIN ANALYSE SELECT id FROM customers`);
  c.refused(`EXPLAIN (ANALYZE) SELECT id FROM customers`);
  c.refused(`EXPLAIN (ANALYZE false, COSTS OFF) SELECT id FROM customers`);
  c.refused(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id FROM customers`);
  c.refused(`EXPLAIN (analyze true) SELECT id FROM orders`);
  c.refused(`EXPLAIN VERBOSE SELECT id FROM customers`);
  c.refused(`EXPLAIN SELECT id FROM customers`);
  c.refused(`EXPLAIN (COSTS OFF) SELECT card_number FROM customers`);
  c.refused(`EXPLAIN (COSTS OFF) SELECT * FROM evil.customers`);
  c.refused(`EXPLAIN (COSTS OFF) CREATE TABLE x AS SELECT ssn FROM customers`);
  c.refused(`EXPLAIN (COSTS OFF) UPDATE orders SET amount = 0`);
  c.refused(`EXPLAIN (COSTS OFF) SELECT * FROM pg_stats`);
  c.ok(`EXPLAIN SELECT * FROM products`);
  c.ok(`EXPLAIN (VERBOSE, FORMAT JSON) SELECT name FROM products WHERE name < 'm' ORDER BY 1`);
  c.ok(`EXPLAIN (COSTS OFF) SELECT 1`);
  c.refused(`EXPLAIN (COSTS OFF) SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.ssn LIKE '1%'`);
  return c.list;
}

function sqlTextFunctions(): Attempt[] {
  const c = category('functions that run SQL text or read outside the statement');
  for (const sql of [
    `SELECT query_to_xml('select ssn from customers', true, true, '')`,
    `SELECT pg_catalog.query_to_xml('select * from evil.customers', true, true, '')`,
    `SELECT "query_to_xml"('select 1', true, true, '')`,
    `SELECT query_to_xmlschema('select ssn from customers', true, true, '')`,
    `SELECT query_to_xml_and_xmlschema('select ssn from customers', true, true, '')`,
    `SELECT table_to_xml('customers', true, true, '')`,
    `SELECT table_to_xml('public.customers'::regclass, true, true, '')`,
    `SELECT table_to_xmlschema('customers', true, true, '')`,
    `SELECT table_to_xml_and_xmlschema('orders', true, true, '')`,
    `SELECT cursor_to_xml('c', 10, true, true, '')`,
    `SELECT cursor_to_xmlschema('c', true, true, '')`,
    `SELECT schema_to_xml('public', true, true, '')`,
    `SELECT schema_to_xml_and_xmlschema('public', true, true, '')`,
    `SELECT database_to_xml(true, true, '')`,
    `SELECT database_to_xmlschema(true, true, '')`,
    `SELECT * FROM ts_stat('select to_tsvector(''simple'', ssn) from customers')`,
    `SELECT * FROM ts_stat($$select to_tsvector('simple', full_name) from customers$$, 'a')`,
    `SELECT ts_rewrite('a'::tsquery, 'select to_tsquery(ssn), to_tsquery(email) from customers')`,
    `SELECT xpath('/a', query_to_xml('select 1', true, true, ''))`,
    `SELECT (SELECT query_to_xml('select ssn from customers', true, true, ''))`,
    `SELECT * FROM customers c WHERE query_to_xml('select 1', true, true, '') IS NOT NULL`,
    `SELECT pg_read_file('/etc/passwd')`,
    `SELECT pg_read_binary_file('/etc/passwd')`,
    `SELECT pg_stat_file('/etc/passwd')`,
    `SELECT pg_ls_dir('.')`,
    `SELECT * FROM pg_ls_logdir()`,
    `SELECT current_query()`,
    `SELECT * FROM pg_prepared_statements`,
    `SELECT * FROM pg_prepared_statement()`,
    `SELECT * FROM pg_backend_memory_contexts`,
    `SELECT * FROM pg_get_backend_memory_contexts()`,
    `SELECT dblink('dbname=bypass_corpus', 'select ssn from customers')`,
    `SELECT * FROM dblink_exec('select 1')`,
    `SELECT * FROM crosstab('select 1')`,
    `SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)`,
    `SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL)`,
    `DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM customers LIMIT 1); END $$`,
    `DO LANGUAGE sql 'SELECT 1'`,
    `CALL some_procedure()`,
    `LOAD 'auto_explain'`,
    `CREATE FUNCTION pg_temp.f() RETURNS text LANGUAGE sql AS 'SELECT ssn FROM public.customers LIMIT 1'`,
    `CREATE OR REPLACE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS 'SELECT $1'`,
    `SELECT leak_ssn(${7000000 + 104729})`,
  ]) {
    c.error(sql, { codes: ['42501', '42883', '0A000', '42P01'] });
  }
  // SQL/JSON syntax on PostgreSQL 16+, calls of public functions of those names on older servers.
  // public.json_scalar, json_serialize and json_arrayagg exist here (see world.ts): refused everywhere.
  c.refused(`SELECT json_scalar(1)`);
  c.refused(`SELECT JSON_SCALAR('x')`);
  c.refused(`SELECT json_serialize('{}'::json)`);
  c.refused(`SELECT json_serialize(ssn) FROM customers`);
  c.refused(`SELECT json_arrayagg(ssn) FROM customers`);
  c.refused(`SELECT (SELECT json_scalar(id) FROM customers LIMIT 1)`);
  for (const sql of [
    `SELECT json_objectagg(id : ssn) FROM customers`,
    `SELECT json_array(1, 2)`,
    `SELECT json_object('a' : 1)`,
    `SELECT json('{}')`,
    `SELECT json_exists('{}'::jsonb, '$.a')`,
    `SELECT json_value('{"a": 1}'::jsonb, '$.a')`,
    `SELECT json_query('{"a": 1}'::jsonb, '$.a')`,
    `SELECT system_user`,
  ]) {
    c.any(sql);
  }
  c.ok(`SELECT pg_get_viewdef('customer_view'), pg_get_viewdef('region_counts'::regclass, true)`);
  c.ok(`SELECT definition FROM pg_views WHERE viewname = 'customer_view'`);
  c.ok(`SELECT pg_get_functiondef('public.leak_ssn'::regproc)`);
  c.ok(`SELECT * FROM pg_get_keywords() LIMIT 1`);
  c.any(`SELECT pg_input_is_valid('', 'checked_text')`);
  c.ok(`SELECT to_regclass('customers'), 'customers'::regclass::oid > 0`);
  c.ok(`SELECT xmlelement(name x, ssn) FROM customers`);
  c.ok(`SELECT xmlagg(xmlelement(name e, email)) FROM customers`);
  return c.list;
}

function largeObjects(): Attempt[] {
  const c = category('large objects');
  for (const sql of [
    `SELECT lo_import('/etc/hostname')`,
    `SELECT lo_from_bytea(0, convert_to(ssn, 'UTF8')) FROM customers`,
    `SELECT lo_get(1)`,
    `SELECT lo_put(1, 0, '\\x00')`,
    `SELECT lo_create(0)`,
    `SELECT lo_creat(-1)`,
    `SELECT lo_unlink(1)`,
    `SELECT lo_export(1, '/tmp/x')`,
    `SELECT lo_open(1, 262144)`,
    `SELECT loread(lo_open(1, 262144), 10)`,
    `SELECT lowrite(0, '\\x00')`,
    `SELECT * FROM pg_largeobject`,
    `SELECT data FROM pg_catalog.pg_largeobject WHERE loid = 1`,
    `SELECT pg_catalog.lo_truncate(0, 0)`,
  ]) {
    c.refused(sql, ['42501']);
  }
  c.ok(`SELECT * FROM pg_largeobject_metadata`);
  return c.list;
}

function notify(): Attempt[] {
  const c = category('LISTEN/NOTIFY');
  // Analysts have no misc action: LISTEN is refused (payloads of other sessions are unmasked).
  c.refused(`LISTEN corpus_channel`);
  c.refused(`LISTEN "Corpus Channel"`);
  c.refused(`BEGIN; LISTEN corpus_channel; COMMIT`, ['42501'], { multi: true });
  // Nor NOTIFY: notifications reach other sessions' listeners.
  c.refused(`SELECT pg_notify('corpus_channel', ssn) FROM customers`);
  c.refused(`SELECT pg_notify('corpus_channel', string_agg(email, ',')) FROM customers`);
  c.refused(`SELECT pg_notify('corpus_channel', concat_ws('|', id, salary, date_of_birth)) FROM customers`);
  c.refused(`SELECT pg_catalog.pg_notify('corpus_channel', full_name) FROM customers WHERE region = 'us'`);
  c.refused(`SELECT 1 FROM orders WHERE pg_notify('corpus_channel', customer_id::text) IS NULL`);
  c.refused(`NOTIFY corpus_channel, 'plain payload'`);
  c.refused(`SELECT pg_notify('corpus_channel', (SELECT card_number FROM customers LIMIT 1))`);
  c.refused(`SELECT pg_notify('corpus_channel', c::text) FROM customers c`);
  c.refused(`SELECT pg_notify('corpus_channel', ssn) FROM evil.customers`);
  c.ok(`UNLISTEN *`);
  c.ok(`SELECT pg_listening_channels()`);
  return c.list;
}

function systemColumns(): Attempt[] {
  const c = category('system columns');
  for (const sql of [
    `SELECT ctid FROM customers`,
    `SELECT xmin FROM customers`,
    `SELECT xmax, cmin, cmax FROM customers`,
    `SELECT tableoid FROM customers`,
    `SELECT oid FROM customers`,
    `SELECT c.ctid FROM customers c`,
    `SELECT customers.xmin FROM customers`,
    `SELECT public.customers.ctid FROM public.customers`,
    `SELECT id FROM customers WHERE ctid = '(0,1)'`,
    `SELECT count(*) FROM customers WHERE ctid > '(0,0)'`,
    `SELECT max(ctid) FROM customers`,
    `SELECT id FROM customers ORDER BY ctid`,
    `SELECT ctid FROM orders`,
    `SELECT xmin::text::int FROM orders`,
    `SELECT tableoid::regclass, id FROM customers_part`,
    `SELECT tableoid::regclass, id FROM people`,
    `SELECT * FROM customers_part_eu WHERE tableoid = 0`,
    `SELECT id FROM customers_part_us WHERE xmin <> '0'`,
    `SELECT c.id, o.ctid FROM customers c JOIN orders o ON o.customer_id = c.id`,
    `SELECT ctid FROM customers c JOIN products p ON p.id = 1`,
    `SELECT x.ctid FROM customers x(a)`,
  ]) {
    c.error(sql, { codes: ['42501', '42703', '42702'] });
  }
  c.ok(`SELECT ctid, xmin, tableoid::regclass FROM products`);
  c.error(`SELECT ctid FROM (SELECT * FROM products) p`, { codes: ['42703'] });
  c.refused(`SELECT currtid2('customers', '(0,1)')`);
  return c.list;
}

function partitions(w: World): Attempt[] {
  const c = category('partitions and inheritance');
  const h = w.hidden[0]!;
  const none = rowsWhere.count(0);
  c.ok(`SELECT id, full_name, ssn FROM customers_part`, { check: rowsWhere.count(w.visible.length) });
  c.ok(`SELECT id, full_name FROM customers_part_us`, { check: none });
  c.ok(`SELECT id, full_name FROM public.customers_part_us`, { check: none });
  c.ok(`SELECT id, full_name FROM archive.customers_part_apac`, { check: none });
  c.ok(`SELECT id, full_name FROM customers_part_other`, { check: none });
  c.ok(`SELECT id, ssn FROM ONLY customers_part`, { check: none });
  c.ok(`SELECT id, ssn, email, salary FROM customers_part_eu`, { check: rowsWhere.count(w.visible.length) });
  c.ok(`SELECT count(*) FROM customers_part WHERE region = 'us'`, { check: rowsWhere.value('0') });
  c.ok(`SELECT count(*) FROM customers_part_us, archive.customers_part_apac`, { check: rowsWhere.value('0') });
  c.ok(`SELECT id, ssn FROM customers_part_eu WHERE id IN (SELECT id FROM customers_part_us)`, { check: none });
  c.ok(`SELECT a.id FROM customers_part_eu a JOIN customers_part_us b ON a.id <> b.id`, { check: none });
  c.ok(`SELECT id FROM customers_part_us UNION SELECT id FROM customers_part WHERE id = ${h.id}`, { check: none });
  c.ok(`SELECT id, ssn FROM people`, { check: rowsWhere.count(w.visible.length) });
  c.ok(`SELECT id, ssn, tier FROM people_vip`, { check: none });
  c.ok(`SELECT * FROM ONLY people`);
  c.ok(`SELECT * FROM people_vip`, { check: none });
  c.ok(`SELECT p.* FROM people p WHERE region <> 'eu'`, { check: none });
  c.ok(`SELECT * FROM public.people_vip v WHERE v.id = ${h.id}`, { check: none });
  c.ok(`SELECT * FROM pg_partition_tree('customers_part')`);
  c.ok(`SELECT inhrelid::regclass FROM pg_inherits`);
  c.ok(`SELECT * FROM pg_partition_ancestors('customers_part_us')`);
  c.refused(`SELECT card_number FROM customers_part_us`);
  c.refused(`SELECT * FROM customers_part_eu`);
  c.refused(`SELECT * FROM archive.customers_part_apac`);
  c.refused(`SELECT id FROM customers_part_us TABLESAMPLE SYSTEM (100)`, ['0A000', '42501']);
  c.refused(`SELECT id FROM people_vip TABLESAMPLE BERNOULLI (100) REPEATABLE (1)`, ['0A000', '42501']);
  c.ok(`SELECT id FROM products TABLESAMPLE BERNOULLI (50) REPEATABLE (7)`);
  // FOR UPDATE needs UPDATE privilege, which pgward's service role lacks here: the server refuses.
  c.any(`SELECT id, full_name FROM customers_part_us FOR UPDATE`, { tx: true });
  c.ok(`SELECT region, count(*) FROM customers_part GROUP BY region`, { check: rowsWhere.count(1) });
  return c.list;
}

function relations(): Attempt[] {
  const c = category('views, materialized views and sequences');
  for (const sql of [
    `SELECT * FROM customer_view`,
    `SELECT ssn FROM customer_view`,
    `SELECT id, full_name FROM customer_view WHERE region = 'us'`,
    `TABLE customer_view`,
    `SELECT * FROM customer_view v JOIN customers c USING (id)`,
    `SELECT (SELECT count(*) FROM customer_view)`,
    `SELECT * FROM customer_mv`,
    `SELECT ssn FROM public.customer_mv`,
    `REFRESH MATERIALIZED VIEW customer_mv`,
    `SELECT * FROM invoice_seq`,
    `SELECT last_value FROM customers_id_seq`,
    `SELECT * FROM public.orders_id_seq`,
  ]) {
    c.refused(sql);
  }
  c.ok(`SELECT * FROM region_counts`);
  c.ok(`SELECT n FROM region_counts WHERE region = 'eu'`);
  c.ok(`SELECT * FROM information_schema.views WHERE table_name = 'customer_view'`);
  c.ok(`SELECT matviewname, definition FROM pg_matviews`);
  c.ok(`SELECT * FROM information_schema.sequences`);
  c.any(`SELECT pg_sequence_last_value('customers_id_seq')`);
  c.any(`SELECT currval('customers_id_seq')`);
  // Changing a sequence is a write: it takes the misc action.
  c.refused(`SELECT nextval('invoice_seq')`);
  c.refused(`SELECT setval('invoice_seq', 1)`);
  c.refused(`SELECT id FROM products WHERE id < nextval('invoice_seq')`);
  return c.list;
}

function statementsAndWrites(): Attempt[] {
  const c = category('fail-closed statements and writes');
  for (const sql of [
    `INSERT INTO products VALUES (3, 'x', 1)`,
    `INSERT INTO products SELECT 4, ssn, salary FROM customers`,
    `UPDATE products SET name = 'y'`,
    `UPDATE customers SET full_name = full_name WHERE ssn LIKE '9%'`,
    `DELETE FROM orders`,
    `DELETE FROM orders WHERE customer_id = 1 RETURNING *`,
    `TRUNCATE orders`,
    `TRUNCATE customers_part_us`,
    `MERGE INTO products p USING (SELECT 1 AS id) s ON p.id = s.id WHEN MATCHED THEN DELETE`,
    `INSERT INTO customers (full_name, email, region) VALUES ('x', 'x@x', 'eu') RETURNING *`,
    `INSERT INTO orders (customer_id) VALUES (1) ON CONFLICT DO NOTHING`,
    `VACUUM customers`,
    `ANALYZE customers`,
    `VACUUM (VERBOSE, ANALYZE) customers`,
    `CLUSTER customers USING customers_pkey`,
    `CHECKPOINT`,
    `LOCK TABLE customers IN ACCESS SHARE MODE`,
    `CREATE TABLE stolen (a text)`,
    `CREATE TABLE stolen AS SELECT ssn FROM customers`,
    `SELECT ssn INTO stolen FROM customers`,
    `CREATE MATERIALIZED VIEW m AS SELECT 1`,
    `CREATE VIEW v AS SELECT ssn FROM customers`,
    `CREATE INDEX ON customers (ssn)`,
    `CREATE STATISTICS s ON region, full_name FROM customers`,
    `DROP TABLE customers`,
    `ALTER TABLE customers ADD COLUMN x int`,
    `COMMENT ON TABLE customers IS 'x'`,
    `GRANT SELECT ON customers TO PUBLIC`,
    `REVOKE SELECT ON customers FROM scram_user`,
    `CREATE ROLE r`,
    `CREATE EXTENSION dblink`,
    `CREATE EXTENSION IF NOT EXISTS pageinspect`,
    `IMPORT FOREIGN SCHEMA public FROM SERVER s INTO evil`,
    `CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw`,
    `CREATE PUBLICATION p FOR ALL TABLES`,
    `CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p`,
    `SECURITY LABEL ON TABLE customers IS 'x'`,
    `REINDEX TABLE customers`,
    `ALTER SYSTEM SET log_statement = 'all'`,
    `ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC`,
    `REASSIGN OWNED BY scram_user TO pgward_test`,
    `DROP OWNED BY scram_user`,
    `CREATE RULE r AS ON SELECT TO products DO INSTEAD SELECT * FROM customers`,
    `CREATE TRIGGER t BEFORE INSERT ON orders EXECUTE FUNCTION f()`,
    `CREATE CAST (text AS int) WITH FUNCTION leak_ssn(int)`,
    `CREATE OPERATOR === (LEFTARG = text, RIGHTARG = text, FUNCTION = texteq)`,
    `ALTER TABLE customers ENABLE ROW LEVEL SECURITY`,
    `CREATE POLICY p ON customers USING (true)`,
  ]) {
    c.error(sql, { codes: ['42501', '0A000'] });
  }
  c.any(`BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT count(*) FROM customers; COMMIT`, { multi: true });
  c.any(`BEGIN; SET CONSTRAINTS ALL DEFERRED; COMMIT`, { multi: true });
  c.any(`BEGIN; SAVEPOINT a; SELECT ssn FROM customers; ROLLBACK TO a; RELEASE a; COMMIT`, { multi: true });
  c.any(`PREPARE TRANSACTION 'corpus'`);
  c.ok(`SHOW ALL`);
  c.ok(`DISCARD PLANS`);
  c.ok(`DISCARD SEQUENCES`);
  // Advisory locks are held against other sessions of the service role.
  c.refused(`SELECT pg_advisory_lock(1), pg_advisory_unlock(1)`);
  c.refused(`SELECT pg_try_advisory_xact_lock(1)`);
  c.refused(`SELECT pg_stat_reset()`);
  c.refused(`SELECT pg_cancel_backend(pg_backend_pid())`);
  c.refused(`SELECT pg_terminate_backend(1)`);
  c.refused(`SELECT pg_catalog.pg_terminate_backend(pg_stat_get_backend_pid(s)) FROM pg_stat_get_backend_idset() s`);
  c.ok(`SELECT txid_current_if_assigned(), pg_backend_pid() > 0`);
  c.any(`SELECT * FROM pg_authid`);
  c.any(`SELECT usename, passwd FROM pg_shadow`);
  c.ok(`SELECT name, setting FROM pg_settings WHERE name LIKE 'search%'`);
  c.any(`SET statement_timeout = '1min'`);
  c.any(`SET DateStyle = 'SQL, DMY'`);
  c.ok(`SELECT date_of_birth, created_at FROM customers LIMIT 3`);
  c.any(`SET DateStyle = 'German'`);
  c.ok(`SELECT date_of_birth FROM customers`);
  c.any(`SET DateStyle = 'ISO, MDY'`);
  c.any(`SET extra_float_digits = 3`);
  c.ok(`SELECT salary::float8, avg(salary) OVER () FROM customers`);
  c.any(`SET TimeZone = 'Pacific/Kiritimati'`);
  c.ok(`SELECT date_of_birth::timestamptz, date_trunc('day', date_of_birth) FROM customers`);
  c.any(`RESET TimeZone`);
  c.any(`SET client_min_messages = debug5`);
  c.ok(`SELECT id, ssn FROM customers WHERE id > 0`);
  c.any(`SET client_min_messages = notice`);
  c.any(`SET application_name = 'corpus'`);
  return c.list;
}

function pushdown(w: World): Attempt[] {
  // Leakproof comparisons of raw columns with constants are copied into the protected subqueries.
  const c = category('conditions copied into protected subqueries');
  const v = w.visible[0]!;
  const h = w.hidden[0]!;
  const none = rowsWhere.count(0);
  const one = rowsWhere.count(1);
  c.ok(`SELECT full_name FROM customers WHERE id = ${h.id}`, { check: none });
  c.ok(`SELECT full_name FROM customers c WHERE c.id = ${h.id}`, { check: none });
  c.ok(`SELECT full_name FROM public.customers WHERE customers.id = ${h.id}`, { check: none });
  c.ok(`SELECT full_name FROM customers WHERE id IN (${h.id}, ${v.id})`, { check: one });
  c.ok(`SELECT full_name FROM customers WHERE id BETWEEN ${h.id} AND ${h.id}`, { check: none });
  c.ok(`SELECT full_name FROM customers WHERE id NOT BETWEEN 0 AND ${v.id - 1} AND id = ${h.id}`, { check: none });
  c.ok(`SELECT full_name FROM customers WHERE region = 'us'`, { check: none });
  c.ok(`SELECT full_name FROM customers WHERE region = 'eu' AND region <> 'eu'`, { check: none });
  c.ok(`SELECT id FROM customers WHERE full_name = ${q(h.fullName)}`, { check: none });
  c.ok(`SELECT id FROM customers WHERE full_name = ${q(v.fullName)}`, { check: one });
  c.ok(`SELECT id FROM customers WHERE id = '${h.id}'`, { check: none });
  c.ok(`SELECT id FROM customers WHERE id = ${h.id}::int8`, { check: none });
  c.ok(`SELECT id FROM customers WHERE id = ${h.id}.0`, { check: none });
  c.ok(`SELECT id FROM customers WHERE id = NULL`, { check: none });
  c.ok(`SELECT id FROM customers WHERE id IS NOT NULL AND id = ${h.id}`, { check: none });
  c.ok(`SELECT a FROM customers AS c(a) WHERE a = ${h.id}`, { check: none });
  c.ok(`SELECT c.a FROM customers AS c(a) WHERE c.a = ${v.id}`, { check: one });
  c.ok(`SELECT o.id FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id = ${h.id}`, { check: none });
  c.ok(`SELECT o.id, c.id FROM orders o FULL JOIN customers c ON c.id = o.customer_id WHERE c.id = ${v.id}`);
  c.ok(`SELECT o.id FROM orders o RIGHT JOIN customers c ON c.id = o.customer_id WHERE o.customer_id = ${h.id}`, { check: none });
  c.ok(`SELECT count(*) FROM customers a, customers b WHERE a.id = ${v.id} AND b.id = ${h.id}`, { check: rowsWhere.value('0') });
  c.ok(`SELECT id FROM customers WHERE ssn = ${q(v.ssn)}`, { check: none });
  c.ok(`SELECT id FROM customers WHERE id = ${v.id} OR region = 'us'`, { check: one });
  c.ok(`SELECT id FROM customers WHERE NOT (id <> ${h.id})`, { check: none });
  c.ok(`SELECT id FROM customers WHERE id = ALL (ARRAY[${h.id}])`, { check: none });
  c.ok(`SELECT id FROM customers c WHERE c.id = (SELECT ${h.id})`, { check: none });
  c.ok(`SELECT id FROM customers_part WHERE id = ${h.id}`, { check: none });
  c.ok(`SELECT id FROM customers_part_us WHERE region = 'us'`, { check: none });
  c.ok(`SELECT id FROM people WHERE id = ${h.id}`, { check: none });
  c.ok(`SELECT id FROM ONLY people WHERE id = ${v.id}`, { check: one });
  c.ok(`SELECT (SELECT full_name FROM customers c WHERE c.id = o.customer_id) FROM orders o WHERE o.customer_id = ${h.id}`, { check: none });
  c.ok(`SELECT count(*) FROM customers WHERE full_name > 'M' AND created_at > '2000-01-01'::timestamptz`);
  c.ok(`SELECT id FROM customers WHERE full_name = ${q(h.fullName)} COLLATE "C"`, { check: none });
  c.ok(`SELECT id FROM customers WHERE full_name = ${q(h.fullName)}::varchar`, { check: none });
  c.ok(`SELECT id FROM customers WHERE full_name = ${q(h.fullName)}::name`, { check: none });
  c.ok(`SELECT id FROM customers WHERE date_of_birth IS NOT NULL AND salary IS NULL AND id = ${v.id}`, { check: one });
  c.ok(`SELECT id FROM customers x WHERE x.id = ${h.id} UNION ALL SELECT id FROM customers y WHERE y.id = ${h.id}`, { check: none });
  c.ok(`WITH t AS (SELECT id FROM customers WHERE id = ${h.id}) SELECT * FROM t`, { check: none });
  c.any(`SELECT id FROM customers WHERE id = ${h.id} FOR SHARE`, { tx: true });
  c.any(`SELECT id FROM customers WHERE id = 1 / 0`);
  // Leaky conditions of a query around a level whose conditions were all copied inside: the planner
  // must not get to push them below the row filter (an error would tell the hidden order apart).
  const x = w.hiddenWithOrders[0]!;
  const leaky = (col: string): string => `1 / (CASE WHEN ${col} = ${x} THEN 0 ELSE 1 END) = 1`;
  c.ok(`SELECT 1 FROM (SELECT id, customer_id FROM orders WHERE id > 0) s WHERE ${leaky('s.customer_id')}`);
  c.ok(`WITH s AS (SELECT id, customer_id FROM orders WHERE id > 0) SELECT 1 FROM s WHERE ${leaky('s.customer_id')}`);
  c.ok(`WITH s AS NOT MATERIALIZED (SELECT customer_id FROM orders WHERE customer_id IS NOT NULL) SELECT count(*) FROM s WHERE ${leaky('s.customer_id')}`);
  c.ok(`SELECT 1 FROM (SELECT customer_id FROM orders WHERE id > 0 UNION ALL SELECT 0) s WHERE ${leaky('s.customer_id')}`);
  c.ok(`SELECT 1 FROM (VALUES (1)) v, LATERAL (SELECT customer_id FROM orders WHERE id > v.column1) s WHERE ${leaky('s.customer_id')}`);
  c.ok(`SELECT 1 FROM (SELECT * FROM (SELECT customer_id FROM orders WHERE id > 0) a) b WHERE ${leaky('b.customer_id')}`);
  c.ok(`SELECT (SELECT count(*) FROM (SELECT customer_id FROM orders WHERE id > 0) s WHERE ${leaky('s.customer_id')})`);
  c.ok(`SELECT 1 FROM (SELECT id FROM customers WHERE id > 0) s WHERE ${leaky('s.id')}`);
  c.ok(`SELECT 1 FROM (SELECT id FROM customers_part WHERE id > 0) s WHERE ${leaky('s.id')}`);
  c.ok(`SELECT 1 FROM (SELECT id FROM people WHERE id > 0) s WHERE ${leaky('s.id')}`);
  c.ok(`DECLARE corpus_fence CURSOR FOR SELECT 1 FROM (SELECT customer_id FROM orders WHERE id > 0) s WHERE ${leaky('s.customer_id')}; FETCH ALL FROM corpus_fence`, { tx: true, multi: true });
  c.ok(`COPY (SELECT 1 FROM (SELECT customer_id FROM orders WHERE id > 0) s WHERE ${leaky('s.customer_id')}) TO STDOUT`, { copy: true });
  c.ok(`SELECT customer_id FROM orders WHERE customer_id = ${x}`, { check: none });
  c.any(`SELECT id FROM customers WHERE full_name = (${q(h.fullName)}::text || '')`);
  return c.list;
}

/** Every attempt, in the order they run on one session. */
export function buildCorpus(w: World): Attempt[] {
  return [
    ...predicates(w),
    ...pushdown(w),
    ...errors(w),
    ...statistics(w),
    ...wholeRow(w),
    ...setOperations(w),
    ...nesting(w),
    ...searchPath(w),
    ...identifiers(w),
    ...lexical(),
    ...encodings(w),
    ...prepared(w),
    ...cursors(w),
    ...copy(w),
    ...explain(),
    ...sqlTextFunctions(),
    ...largeObjects(),
    ...notify(),
    ...systemColumns(),
    ...partitions(w),
    ...relations(),
    ...statementsAndWrites(),
  ];
}
