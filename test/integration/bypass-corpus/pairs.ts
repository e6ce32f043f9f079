/**
 * Differential probes for inference: each template is run once with a real
 * hidden value and once with a decoy of the same length that no row holds.
 * If the policies hide the value, the two answers are byte for byte the same
 * (once each literal is replaced by a placeholder); any difference — a row
 * count, an error, an estimate, a COPY line — tells the client something it
 * must not learn.
 */
import type { World } from './world.js';

export interface Pair {
  readonly category: string;
  readonly template: string;
  readonly sql: (value: string) => string;
  readonly secret: string;
  readonly decoy: string;
}

type Template = (value: string) => string;

const ssnTemplates: Template[] = [
  (s) => `SELECT count(*) FROM customers WHERE ssn = '${s}'`,
  (s) => `SELECT count(*) FROM customers WHERE ssn LIKE substr('${s}', 1, 3) || '%'`,
  (s) => `SELECT count(*) FROM customers WHERE substr(ssn, 1, 6) = substr('${s}', 1, 6)`,
  (s) => `SELECT count(*) FROM customers WHERE ssn ~ ('^' || substr('${s}', 1, 3))`,
  (s) => `SELECT count(*) FROM customers WHERE md5(ssn) = md5('${s}')`,
  (s) => `SELECT 1 / (CASE WHEN ssn = '${s}' THEN 0 ELSE 1 END) FROM customers`,
  (s) => `SELECT CASE WHEN ssn = '${s}' THEN ssn::int END FROM customers`,
  (s) => `SELECT bool_or(ssn = '${s}'), count(*) FILTER (WHERE ssn >= '${s}') FROM customers`,
  (s) => `SELECT EXISTS (SELECT 1 FROM customers WHERE ssn = '${s}')`,
  (s) => `SELECT count(*) FROM customers_part WHERE ssn = '${s}'`,
  (s) => `SELECT count(*) FROM people WHERE ssn = '${s}'`,
  (s) => `SELECT count(*) FROM people_vip WHERE ssn LIKE substr('${s}', 1, 3) || '%'`,
  (s) => `SELECT * FROM generate_series(1, (SELECT count(*)::int FROM customers WHERE ssn = '${s}'))`,
  (s) => `SELECT id FROM customers ORDER BY ssn = '${s}' DESC, id LIMIT 1`,
  (s) => `SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.ssn = '${s}'`,
  (s) => `COPY (SELECT id FROM customers WHERE ssn = '${s}') TO STDOUT`,
  (s) => `SELECT count(*) FROM (SELECT ssn FROM customers UNION ALL SELECT ssn FROM people) x WHERE ssn = '${s}'`,
  (s) => `EXPLAIN SELECT 1 FROM customers c, generate_series(1, 1000000) g WHERE c.ssn < '${s}'`,
];

const emailTemplates: Template[] = [
  (e) => `SELECT count(*) FROM customers WHERE email LIKE '${e}@%'`,
  (e) => `SELECT count(*) FROM customers WHERE split_part(email, '@', 1) = '${e}'`,
  (e) => `SELECT count(*) FROM customers WHERE strpos(email, '${e}') > 0`,
  (e) => `SELECT 1 / (CASE WHEN email LIKE '${e}%' THEN 0 ELSE 1 END) FROM customers`,
  (e) => `SELECT id FROM customers ORDER BY email > '${e}', id LIMIT 1`,
  (e) => `SELECT count(*) FROM customers_part_us WHERE email LIKE '${e}%'`,
];

const salaryTemplates: Template[] = [
  (s) => `SELECT count(*) FROM customers WHERE salary = ${s}`,
  (s) => `SELECT count(*) FROM customers WHERE salary::text = '${s}'`,
  (s) => `SELECT 1 / (CASE WHEN salary = ${s} THEN 0 ELSE 1 END) FROM customers`,
  (s) => `SELECT EXISTS (SELECT 1 FROM customers_part WHERE salary BETWEEN ${s} - 0.001 AND ${s} + 0.001)`,
  (s) => `SELECT count(*) FROM customers WHERE salary >= ${s}`,
];

const birthTemplates: Template[] = [
  (d) => `SELECT count(*) FROM customers WHERE date_of_birth = '${d}'`,
  (d) => `SELECT count(*) FROM customers WHERE to_char(date_of_birth, 'YYYY-MM-DD') = '${d}'`,
  (d) => `SELECT 1 / (CASE WHEN date_of_birth = '${d}' THEN 0 ELSE 1 END) FROM customers`,
  (d) => `SELECT count(*) FROM customers WHERE date_of_birth > '${d}'::date - 1 AND date_of_birth < '${d}'::date + 1`,
];

const nameTemplates: Template[] = [
  (n) => `SELECT count(*) FROM customers WHERE full_name = '${n}'`,
  (n) => `SELECT count(*) FROM customers WHERE full_name LIKE substr('${n}', 1, 5) || '%' AND region <> 'eu'`,
  (n) => `SELECT 1 / (CASE WHEN full_name = '${n}' THEN 0 ELSE 1 END) FROM customers`,
  (n) => `SELECT EXISTS (SELECT 1 FROM customers_part_us WHERE full_name = '${n}')`,
  (n) => `SELECT count(*) FROM people WHERE full_name = '${n}'`,
  (n) => `SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.full_name = '${n}'`,
  (n) => `SELECT '${n}' IN (SELECT full_name FROM customers)`,
  (n) => `EXPLAIN SELECT 1 FROM customers c, generate_series(1, 1000000) g WHERE c.full_name < '${n}'`,
  (n) => `EXPLAIN SELECT 1 FROM customers WHERE full_name = '${n}'`,
  (n) => `EXPLAIN (FORMAT JSON) SELECT 1 FROM customers_part c, generate_series(1, 1000000) g WHERE c.full_name <= '${n}'`,
];

const idTemplates: Template[] = [
  (i) => `SELECT count(*) FROM customers WHERE id = ${i}`,
  (i) => `SELECT count(*) FROM orders WHERE customer_id = ${i}`,
  (i) => `SELECT 1 / (CASE WHEN id = ${i} THEN 0 ELSE 1 END) FROM customers`,
  (i) => `SELECT EXISTS (SELECT 1 FROM people WHERE id = ${i})`,
  (i) => `SELECT count(*) FROM customers_part_us WHERE id = ${i}`,
  (i) => `SELECT count(*) FROM customers WHERE id BETWEEN ${i} - 1 AND ${i} + 1`,
  (i) => `SELECT max(id) < ${i} FROM (SELECT id FROM customers UNION SELECT customer_id FROM orders) x`,
  // A client subquery whose only conditions are copied inside the protected one, around a leaky condition.
  (i) => `SELECT 1 FROM (SELECT id, customer_id FROM orders WHERE id > 0) s WHERE 1 / (CASE WHEN s.customer_id = ${i} THEN 0 ELSE 1 END) = 1`,
  (i) => `SELECT count(*) FROM (SELECT customer_id FROM orders WHERE customer_id IS NOT NULL) s WHERE (CASE WHEN s.customer_id = ${i} THEN 'x' ELSE '1' END)::int = 1`,
  (i) => `SELECT 1 FROM (SELECT id FROM customers WHERE id > 0) s WHERE 1 / (CASE WHEN s.id = ${i} THEN 0 ELSE 1 END) = 1`,
  (i) => `SELECT 1 FROM (SELECT id FROM customers_part WHERE id > 0) s WHERE int2(s.id - ${i} + 1) IS NOT NULL`,
  (i) => `SELECT 1 FROM (SELECT id FROM people WHERE id > 0) s WHERE 1 / (s.id - ${i}) IS NOT NULL`,
  (i) => `SELECT 1 FROM (SELECT o.customer_id FROM orders o WHERE o.customer_id > 0 ORDER BY 1) s WHERE 1 / (s.customer_id - ${i}) IS NOT NULL`,
  (i) => `EXPLAIN SELECT * FROM orders WHERE customer_id = ${i}`,
  (i) => `EXPLAIN SELECT 1 FROM customers c, generate_series(1, 1000000) g WHERE c.id < ${i}`,
];

const cardTemplates: Template[] = [
  (c) => `SELECT count(*) FROM customers WHERE card_number = '${c}'`,
  (c) => `SELECT 1 / (CASE WHEN card_number = '${c}' THEN 0 ELSE 1 END) FROM customers`,
];

/** A value of the same length and shape that no customer has. */
function decoyFor(value: string, taken: ReadonlySet<string>, shift = 3): string {
  for (let k = shift; k < shift + 20; k++) {
    const decoy = value.replace(/[0-9A-Za-z]/g, (ch, i: number) => {
      if (/[0-9]/.test(ch)) return String((Number(ch) + k + i) % 10);
      const base = ch === ch.toUpperCase() ? 65 : 97;
      return String.fromCharCode(base + ((ch.charCodeAt(0) - base + k) % 26));
    });
    if (decoy !== value && !taken.has(decoy)) return decoy;
  }
  throw new Error(`no decoy for ${value}`);
}

function decoyDate(value: string, taken: ReadonlySet<string>): string {
  const year = value.slice(0, 4);
  for (const md of ['06-15', '07-16', '08-17', '09-18']) {
    const d = `${year}-${md}`;
    if (d !== value && !taken.has(d)) return d;
  }
  throw new Error(`no decoy for ${value}`);
}

export function buildPairs(w: World): Pair[] {
  const pairs: Pair[] = [];
  const add = (category: string, templates: Template[], values: readonly string[], decoy: (v: string) => string): void => {
    templates.forEach((sql, t) => {
      for (const secret of values) pairs.push({ category, template: `${category} #${t + 1}`, sql, secret, decoy: decoy(secret) });
    });
  };
  const v = w.visible.find((c) => !c.dateOfBirth.endsWith('-01-01') && !c.dateOfBirth.slice(5).startsWith('01-'))!;
  const h = w.hidden.find((c) => !c.dateOfBirth.endsWith('-01-01') && !c.dateOfBirth.slice(5).startsWith('01-'))!;
  const h2 = w.hidden[w.hidden.length - 1]!;
  const all = (f: (c: World['customers'][number]) => string): Set<string> => new Set(w.customers.map(f));
  const local = (c: World['customers'][number]): string => c.email.split('@')[0]!;
  add('ssn', ssnTemplates, [v.ssn, h.ssn], (s) => decoyFor(s, all((c) => c.ssn)));
  add('email', emailTemplates, [local(v), local(h)], (s) => decoyFor(s, all(local)));
  add('salary', salaryTemplates, [v.salary, h.salary], (s) => decoyFor(s, all((c) => c.salary), 1));
  add('birth date', birthTemplates, [v.dateOfBirth, h.dateOfBirth], (s) => decoyDate(s, all((c) => c.dateOfBirth)));
  add('hidden name', nameTemplates, [h.fullName, h2.fullName], (s) => decoyFor(s, all((c) => c.fullName)));
  add('hidden id', idTemplates, [String(h.id), String(h2.id)], (s) => String(Number(s) + 1));
  add('card number', cardTemplates, [v.cardNumber, h.cardNumber], (s) => decoyFor(s, all((c) => c.cardNumber)));
  return pairs;
}
