/**
 * The database and policies the bypass corpus attacks: the demo schema and
 * data (customers with PII, orders), renumbered so every customer id is a
 * distinctive 7-digit number, plus the objects the attacks need —
 * a partitioned copy of customers (one partition in a schema off the
 * search_path), an inheritance pair, views and a materialized view created
 * beforehand by the superuser, a schema full of raw copies, a user function,
 * a checked domain and an unprotected table.
 */
import type pg from 'pg';
import { seedDemoData } from '../../../src/upstream/demo-database.js';

/** The claim the analyst token carries (test/helpers/oidc-provider.ts, client `reporting`). */
export const ANALYST_REGION = 'eu';

export const SETUP_SQL = [
  // Distinctive ids: a customer id found in any response means that customer's row reached the client.
  `ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey`,
  `UPDATE customers SET id = 7000000 + id * 104729`,
  `UPDATE orders SET customer_id = 7000000 + customer_id * 104729`,
  `ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers`,

  // A partitioned copy, protected by rules on the parent only; one partition lives off the search_path.
  `CREATE SCHEMA archive`,
  `CREATE TABLE customers_part (LIKE customers) PARTITION BY LIST (region)`,
  `CREATE TABLE customers_part_eu PARTITION OF customers_part FOR VALUES IN ('eu')`,
  `CREATE TABLE customers_part_us PARTITION OF customers_part FOR VALUES IN ('us')`,
  `CREATE TABLE archive.customers_part_apac PARTITION OF customers_part FOR VALUES IN ('apac')`,
  `CREATE TABLE customers_part_other PARTITION OF customers_part DEFAULT`,
  `INSERT INTO customers_part SELECT * FROM customers`,

  // Inheritance: the child holds the non-eu half, with a column of its own.
  `CREATE TABLE people (id int, full_name text, ssn text, region text)`,
  `CREATE TABLE people_vip (tier text) INHERITS (people)`,
  `INSERT INTO people SELECT id, full_name, ssn, region FROM customers WHERE region = 'eu'`,
  `INSERT INTO people_vip SELECT id, full_name, ssn, region, 'gold' FROM customers WHERE region <> 'eu'`,

  // Objects the superuser made beforehand.
  `CREATE VIEW customer_view AS SELECT * FROM customers`,
  `CREATE VIEW region_counts AS SELECT region, count(*) AS n FROM customers GROUP BY region`,
  `CREATE MATERIALIZED VIEW customer_mv AS SELECT id, ssn, salary FROM customers`,
  `CREATE SCHEMA evil`,
  `CREATE TABLE evil.customers AS SELECT * FROM customers`,
  `CREATE TABLE products (id int PRIMARY KEY, name text, price numeric)`,
  `INSERT INTO products VALUES (1, 'widget', 9.99), (2, 'gadget', 19.5)`,
  `CREATE FUNCTION public.leak_ssn(int) RETURNS text LANGUAGE sql AS 'SELECT ssn FROM public.customers WHERE id = $1'`,
  `CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS 'SELECT (SELECT max(ssn) FROM public.customers)'`,
  `CREATE DOMAIN public.checked_text AS text CHECK (VALUE <> '')`,
  // Names that are SQL/JSON syntax since PostgreSQL 16 but plain function names before it.
  `CREATE FUNCTION public.json_scalar(anyelement) RETURNS text LANGUAGE sql AS $$SELECT string_agg(ssn, ',') FROM public.customers$$`,
  `CREATE FUNCTION public.json_serialize(anyelement) RETURNS text LANGUAGE sql AS $$SELECT string_agg(email, ',') FROM public.customers$$`,
  `CREATE FUNCTION public.json_arrayagg(text) RETURNS text LANGUAGE sql AS $$SELECT string_agg(card_number, ',') FROM public.customers$$`,
  `CREATE FUNCTION public.merge_action() RETURNS text LANGUAGE sql AS $$SELECT string_agg(full_name, ',') FROM public.customers$$`,
  `CREATE SEQUENCE public.invoice_seq`,

  // The service role pgward logs in with may read everything: only pgward's policies stand in the way.
  `GRANT USAGE ON SCHEMA archive, evil TO scram_user`,
  `GRANT SELECT ON ALL TABLES IN SCHEMA public, archive, evil TO scram_user`,
  `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO scram_user`,
  // Real databases have statistics: planner estimates and pg_stats must not give hidden rows away.
  `ANALYZE`,
];

/** Policies modelled on policies/demo.yaml, with classes that reach every copy of the PII columns. */
export const POLICIES = `
apiVersion: pgward.dev/v1
kind: DataClassification
metadata: { name: corpus-classes }
spec:
  columns:
    - { match: "*.*.ssn",           classes: [pii.ssn] }
    - { match: "*.*.email",         classes: [pii.email] }
    - { match: "*.*.date_of_birth", classes: [pii.dob] }
    - { match: "*.*.salary",        classes: [pii.salary] }
    - { match: "*.*.card_number",   classes: [pci.pan] }
---
apiVersion: pgward.dev/v1
kind: PolicySet
metadata: { name: corpus }
spec:
  defaultAction: deny
  enforcement: enforce
  subjects:
    analysts: { anyOf: [ { group: analysts } ] }
    admins:   { anyOf: [ { group: loaders } ] }
  rules:
    - { name: admins-all, effect: allow, subjects: [admins], actions: [all], resources: { tables: ["*.*"] } }
    - name: analysts-read-customers
      effect: allow
      subjects: [analysts]
      actions: [select, copy_to]
      resources: { tables: [public.customers] }
      rowFilter: "region = \${claims.region}"
    - name: analysts-read-orders
      effect: allow
      subjects: [analysts]
      actions: [select, copy_to]
      resources: { tables: [public.orders] }
      rowFilter: "customer_id IN (SELECT c.id FROM public.customers c WHERE c.region = \${claims.region})"
    - name: analysts-read-customers-part
      effect: allow
      subjects: [analysts]
      actions: [select, copy_to]
      resources: { tables: [public.customers_part] }
      rowFilter: "region = \${claims.region}"
    - name: analysts-read-people
      effect: allow
      subjects: [analysts]
      actions: [select, copy_to]
      resources: { tables: [public.people] }
      rowFilter: "region = \${claims.region}"
    - { name: analysts-read-products, effect: allow, subjects: [analysts], actions: [select, copy_to], resources: { tables: [public.products] } }
    - { name: analysts-read-region-counts, effect: allow, subjects: [analysts], actions: [select], resources: { tables: [public.region_counts] } }
    - name: no-card-numbers
      effect: deny
      subjects: ["*"]
      except: [admins]
      resources: { classes: [pci.pan] }
      message: card numbers are not readable through pgward
  masks:
    - { name: ssn-last4,   subjects: [analysts], resources: { classes: [pii.ssn] },    mask: { type: partial, showLast: 4 } }
    - { name: email-domain, subjects: [analysts], resources: { classes: [pii.email] },  mask: { type: emailDomain } }
    - { name: salary-null, subjects: [analysts], resources: { classes: [pii.salary] }, mask: { type: "null" } }
    - { name: birth-year,  subjects: [analysts], resources: { classes: [pii.dob] },    mask: { type: dateYear } }
`;

export interface Customer {
  id: number;
  fullName: string;
  email: string;
  ssn: string;
  region: string;
  salary: string;
  cardNumber: string;
  dateOfBirth: string;
}

export interface World {
  customers: Customer[];
  visible: Customer[];
  hidden: Customer[];
  /** Ids of hidden customers with orders (the orders row filter hides those orders). */
  hiddenWithOrders: number[];
  /** Strings that must never reach the analyst. */
  secrets: string[];
}

/** Creates the schema in a fresh database (superuser client) and works out what the analyst must never see. */
export async function buildWorld(superuser: pg.Client): Promise<World> {
  await seedDemoData(superuser);
  for (const sql of SETUP_SQL) await superuser.query(sql);
  const { rows } = await superuser.query<{
    id: number;
    full_name: string;
    email: string;
    ssn: string;
    region: string;
    salary: string;
    card_number: string;
    dob: string;
  }>(`SELECT id, full_name, email, ssn, region, salary::text AS salary, card_number, to_char(date_of_birth, 'YYYY-MM-DD') AS dob FROM customers ORDER BY id`);
  const customers: Customer[] = rows.map((r) => ({
    id: r.id,
    fullName: r.full_name,
    email: r.email,
    ssn: r.ssn,
    region: r.region,
    salary: r.salary,
    cardNumber: r.card_number,
    dateOfBirth: r.dob,
  }));
  const visible = customers.filter((c) => c.region === ANALYST_REGION);
  const hidden = customers.filter((c) => c.region !== ANALYST_REGION);
  const secrets = new Set<string>();
  for (const c of customers) {
    secrets.add(c.ssn);
    // What partial masking hides: the area and group numbers.
    secrets.add(`${c.ssn.slice(0, 7)}`);
    secrets.add(`${c.email.split('@')[0]}@`);
    secrets.add(c.email.split('@')[0]!);
    secrets.add(c.salary);
    secrets.add(c.cardNumber);
    secrets.add(c.cardNumber.replace(/\D/g, ''));
    secrets.add(c.cardNumber.slice(0, 9));
    // A birthday on 1 January is indistinguishable from its mask.
    if (!c.dateOfBirth.endsWith('-01-01')) {
      const [y, m, d] = c.dateOfBirth.split('-') as [string, string, string];
      for (const form of [c.dateOfBirth, `${m}/${d}/${y}`, `${d}.${m}.${y}`, `${d}/${m}/${y}`]) secrets.add(form);
    }
  }
  for (const c of hidden) {
    secrets.add(c.fullName);
    secrets.add(String(c.id));
  }
  const withOrders = await superuser.query<{ id: number }>(
    `SELECT c.id FROM customers c WHERE c.region <> $1 AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id) ORDER BY c.id`,
    [ANALYST_REGION],
  );
  return { customers, visible, hidden, hiddenWithOrders: withOrders.rows.map((r) => r.id), secrets: [...secrets] };
}
