// prometheus.mjs — a strict parser for the Prometheus text exposition format (version 0.0.4).
//
// parsePrometheus(text) throws on the first line that is not valid `# HELP`, `# TYPE`, comment or
// `name{labels} value [timestamp]` syntax, and on TYPE/HELP declared twice or TYPE after samples
// of its family. It returns {families: Map(name -> {type, help}), samples: [{name, labels, value}]}.

const METRIC_NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL_NAME = '[a-zA-Z_][a-zA-Z0-9_]*';
const HELP_RE = new RegExp(`^# HELP (${METRIC_NAME})(?: (.*))?$`);
const TYPE_RE = new RegExp(`^# TYPE (${METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE_RE = new RegExp(`^(${METRIC_NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL_RE = new RegExp(`^(${LABEL_NAME})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`);
const VALUE_RE = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/;
const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created'];

function unescapeLabel(value) {
  return value.replace(/\\(["\\n])/g, (_, c) => (c === 'n' ? '\n' : c));
}

// Parses `a="x",b="y"` (optionally with a trailing comma) into an object.
function parseLabels(text, lineNo) {
  const labels = {};
  let rest = text;
  while (rest !== '') {
    const m = LABEL_RE.exec(rest);
    if (!m) throw new Error(`line ${lineNo}: bad label syntax near '${rest}'`);
    if (Object.hasOwn(labels, m[1])) throw new Error(`line ${lineNo}: label ${m[1]} repeated`);
    labels[m[1]] = unescapeLabel(m[2]);
    rest = rest.slice(m[0].length);
    if (rest.startsWith(',')) rest = rest.slice(1);
    else if (rest !== '') throw new Error(`line ${lineNo}: expected ',' between labels near '${rest}'`);
  }
  return labels;
}

function parseValue(text, lineNo) {
  if (!VALUE_RE.test(text)) throw new Error(`line ${lineNo}: bad sample value '${text}'`);
  if (text === 'NaN') return NaN;
  if (text.endsWith('Inf')) return text.startsWith('-') ? -Infinity : Infinity;
  return Number(text);
}

// The family a sample belongs to: its own name, or the name without a histogram/summary suffix
// when that family was declared.
function familyOf(name, families) {
  if (families.has(name)) return name;
  for (const suffix of SUFFIXES) {
    if (name.endsWith(suffix) && families.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return name;
}

function declare(families, name, key, value, lineNo) {
  const family = families.get(name) ?? { type: 'untyped', help: null, declared: {}, sampled: false };
  if (family.declared[key]) throw new Error(`line ${lineNo}: second # ${key.toUpperCase()} for ${name}`);
  if (key === 'type' && family.sampled) throw new Error(`line ${lineNo}: # TYPE for ${name} after its samples`);
  family.declared[key] = true;
  family[key] = value;
  families.set(name, family);
}

export function parsePrometheus(text) {
  if (text !== '' && !text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  const families = new Map();
  const samples = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, i) => {
    const lineNo = i + 1;
    if (line === '') return;
    let m;
    if ((m = HELP_RE.exec(line))) return declare(families, m[1], 'help', m[2] ?? '', lineNo);
    if ((m = TYPE_RE.exec(line))) return declare(families, m[1], 'type', m[2], lineNo);
    if (line.startsWith('#')) {
      if (/^# (HELP|TYPE)\b/.test(line)) throw new Error(`line ${lineNo}: malformed '${line}'`);
      return undefined;
    }
    m = SAMPLE_RE.exec(line);
    if (!m) throw new Error(`line ${lineNo}: not a sample line: '${line}'`);
    const sample = { name: m[1], labels: parseLabels(m[2] ?? '', lineNo), value: parseValue(m[3], lineNo) };
    const familyName = familyOf(sample.name, families);
    if (!families.has(familyName)) families.set(familyName, { type: 'untyped', help: null, declared: {}, sampled: false });
    families.get(familyName).sampled = true;
    samples.push(sample);
    return undefined;
  });
  return { families, samples };
}

// Samples named `name` whose labels include every pair of `labels`.
export function findSample(samples, name, labels = {}) {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}
