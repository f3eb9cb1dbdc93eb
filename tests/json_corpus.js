// Prints what Node's JSON.parse and JSON.stringify make of a corpus of
// numbers, strings and JSON texts, one case a line, for tests/test_json.c
// (json_matches_node_corpus), which runs `node tests/json_corpus.js` and
// checks each line against the C layer:
//
//   number HEX_BITS TEXT      JSON.stringify of the double whose IEEE 754
//                             bits are HEX_BITS (16 hex digits, big-endian)
//   string HEX_UTF8 HEX_JSON  JSON.stringify of the string whose UTF-8
//                             bytes are HEX_UTF8
//   parse HEX_UTF8 RESULT     JSON.parse of the text HEX_UTF8, then
//                             JSON.stringify: RESULT is the output in hex,
//                             "invalid" when JSON.parse throws, or
//                             "unsupported" when the value contains what
//                             the C layer rejects (U+0000, a lone
//                             surrogate, nesting deeper than 1000)
//
// The random cases come from a fixed seed, so every run prints the same
// lines. Empty hex fields are written as "-".
'use strict';

const lines = [];
const hex = (buffer) => (buffer.length === 0 ? '-' : buffer.toString('hex'));

// ---------------------------------------------------------------------------
// A seeded generator (xorshift64*), so the corpus is the same on every run.

let state = 0x9e3779b97f4a7c15n;
const mask64 = (1n << 64n) - 1n;
function random64() {
  state ^= state >> 12n;
  state ^= (state << 25n) & mask64;
  state ^= state >> 27n;
  return (state * 0x2545f4914f6cdd1dn) & mask64;
}
function randomBelow(n) {
  return Number(random64() % BigInt(n));
}

// ---------------------------------------------------------------------------
// Numbers

const view = new DataView(new ArrayBuffer(8));
function bitsOf(x) {
  view.setFloat64(0, x);
  return view.getBigUint64(0).toString(16).padStart(16, '0');
}
function fromBits(bits) {
  view.setBigUint64(0, bits);
  return view.getFloat64(0);
}
function addNumber(x) {
  lines.push(`number ${bitsOf(x)} ${JSON.stringify(x)}`);
}

const fixedNumbers = [
  0, -0, 1, -1, 0.1, 0.1 + 0.2, 1e21, 1e-7, 123456789012345680000, 5e-324,
  1.7976931348623157e308, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 2 ** 53 - 1,
  1 / 3, 100, 1e20, 123.456, -1.5e-10, 1e-6, 1.5e-7, 0.000001, 0.0000015,
  1e21 - 65536, 999999999999999900000, 1e22, 1.5e300, -2.5e-300,
  2.2250738585072014e-308, 2.225073858507201e-308, 4.9406564584124654e-324,
  Number.EPSILON, 1 + Number.EPSILON, 0.5, 2.5, 1e15, 1e16, 1e17,
  123456789, 4294967295, 4294967296, -2147483648, 1e300 * 10, NaN,
  Infinity, -Infinity, 9007199254740993, 0.3, 2 / 3, 1e-5, 1e-323,
];
fixedNumbers.forEach(addNumber);

// Every power of two, where doubles are spaced unevenly.
for (let e = -1074; e <= 1023; e++) addNumber(2 ** e);

// Random bit patterns cover every exponent; short decimals cover the
// numbers people write; integers near 2^53 cover the integer fast path.
for (let i = 0; i < 20000; i++) {
  const x = fromBits(random64());
  if (!Number.isNaN(x)) addNumber(x);
}
for (let i = 0; i < 5000; i++) {
  const digits = randomBelow(1e9);
  const scale = randomBelow(40) - 20;
  addNumber(Number(`${digits}e${scale}`));
}
for (let i = 0; i < 500; i++) {
  addNumber(2 ** 53 - 250 + i);
  addNumber(-(2 ** 53) + 250 - i);
}

// ---------------------------------------------------------------------------
// Strings

function addString(s) {
  const json = JSON.stringify(s);
  lines.push(`string ${hex(Buffer.from(s, 'utf8'))} ${hex(Buffer.from(json, 'utf8'))}`);
}

let everyAscii = '';
for (let c = 1; c < 0x80; c++) everyAscii += String.fromCharCode(c);
const fixedStrings = [
  '', 'hello', everyAscii, '"quoted"', 'back\\slash', '\u2028\u2029',
  '\u007f', 'ünï€😀', '\u{10ffff}', '\u{10000}', '\ufeff', '\ud7ff\ue000',
  '\ufffd', 'tab\there', 'line\nbreak', '/solidus/', '\u0080\u07ff\u0800',
];
fixedStrings.forEach(addString);
for (let c = 1; c < 0x20; c++) addString(`a${String.fromCharCode(c)}b`);

// Random strings of code points from every UTF-8 length, no U+0000 and no
// lone surrogates (neither can be a C string in UTF-8).
const ranges = [[1, 0x7f], [0x80, 0x7ff], [0x800, 0xd7ff], [0xe000, 0xffff],
  [0x10000, 0x10ffff]];
function randomString(length) {
  let s = '';
  for (let i = 0; i < length; i++) {
    const [low, high] = ranges[randomBelow(ranges.length)];
    s += String.fromCodePoint(low + randomBelow(high - low + 1));
  }
  return s;
}
for (let i = 0; i < 300; i++) addString(randomString(randomBelow(20)));

// ---------------------------------------------------------------------------
// Parsing

function depthOf(value) {
  if (value === null || typeof value !== 'object') return 0;
  let max = 0;
  for (const key of Object.keys(value)) max = Math.max(max, depthOf(value[key]));
  return max + 1;
}
function holdsUnsupported(value) {
  const bad = (s) => /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
  if (typeof value === 'string') return bad(value);
  if (value === null || typeof value !== 'object') return false;
  return Object.keys(value).some((key) => bad(key) || holdsUnsupported(value[key]));
}
function addParse(input) {
  const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input, 'utf8');
  // Node's receiver decodes the bytes as UTF-8, invalid bytes becoming
  // U+FFFD, before JSON.parse. The C layer rejects invalid UTF-8 instead,
  // so such inputs are tested in C only and not listed here.
  let result;
  try {
    const value = JSON.parse(bytes.toString('utf8'));
    if (depthOf(value) > 1000 || holdsUnsupported(value)) result = 'unsupported';
    else result = hex(Buffer.from(JSON.stringify(value), 'utf8'));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    result = 'invalid';
  }
  lines.push(`parse ${hex(bytes)} ${result}`);
}

const texts = [
  // Values and whitespace
  '{"seq":123456,"data":"hello"}', 'null', 'true', 'false', '0', '-0', '"x"',
  ' 1 ', '\t\r\n 1 \t\r\n', '[]', '{}', '[ ]', '{ }', ' [ 1 , 2 ] ',
  '{ "a" : 1 , "b" : [ true , false , null ] }', '"x"\r', '', ' ', '\t',
  '\r', '\n',
  // Numbers JSON.parse rejects and cJSON alone would accept
  '01', '-01', '00', '1.', '-.5', '.5', '1.e5', '+1', '1e', '1e+', '-',
  '1.5.3', '1e5e3', '[1-2]', '0x10', 'Infinity', 'NaN', '-Infinity',
  // Numbers
  '1E+05', '1e-05', '1.0', '1.50', '-0.0', '1e999', '-1e999', '1e-999',
  '9007199254740993', '9007199254740995', '1.7976931348623157e308',
  '1.7976931348623158e308', '1.7976931348623159e308',
  '2.4703282292062328e-324', '2.4703282292062327e-324',
  '2.2250738585072011e-308', '123456789012345678901234567890',
  '0.1e1', '100e-2', '[0.1,0.2,0.30000000000000004]',
  // Numbers longer than the 63 characters cJSON reads
  '1' + '0'.repeat(70), '-1' + '0'.repeat(70),
  '0.' + '0'.repeat(70) + '1', '1' + '0'.repeat(400) + 'e-400',
  '[' + '1'.repeat(64) + ',' + '2'.repeat(63) + ']',
  '{"a":' + '9'.repeat(100) + '.5e-10}', '1' + '0'.repeat(80) + 'e300',
  '0.' + '0'.repeat(100) + '1e100', '1.' + '0'.repeat(100) + '1',
  '1' + '0'.repeat(70) + 'x', '0' + '0'.repeat(70), '1' + '0'.repeat(70) + '.',
  // Whitespace JSON.parse rejects and cJSON skips
  '\f1', '1\f', '[1,\v2]', '\u00001', '1\u0000', '\ufeff1', '\u00a01',
  '\u20281',
  // Strings
  '"a\\"b"', '"\\\\"', '"\\/"', '"\\b\\f\\n\\r\\t"', '"\\u0041\\u00e9"',
  '"\\uD83D\\uDE00"', '"\\ud83d\\ude00"', '"\\u2028\\u2029"', '"\\u007f"',
  '"\\u001f"', '"\\uFFFF"', '"\\uzzzz"', '"\\u12"', '"\\u12G4"', '"\\x"',
  '"\\\'"', '"a\tb"', '"a\rb"', '"a\u0001b"', '"a\u001fb"', '"\u007f"',
  '"unterminated', '"\\"', '"ünï€😀"', '"\u2028"',
  // Strings the C layer cannot hold
  '"\\u0000"', '"a\\u0000b"', '{"\\u0000":1}', '"\\ud800"', '"\\udc00"',
  '"\\ud800\\u0041"', '"\\ud800\\ud800"', '"\\udc00\\ud800"',
  '"\\ud800\\udc00"', '["\\u0000", 1,]', '"\\\\u0000"',
  // Structure
  '[1,]', '[,1]', '{"a":1,}', '{,}', '{"a"}', '{"a":}', '{a:1}', "{'a':1}",
  '[1 2]', '{"a":1 "b":2}', '[', ']', '{', '}', '[[]', '[]]', '1 2',
  'nul', 'nulll', 'truee', 'True', '[true false]', '"a" "b"', '{"a":1}}',
  '[1]x', 'x[1]', '/*c*/1', '1//c',
  // Keys: order of array indices, duplicates, __proto__
  '{"b":1,"1":2,"a":3,"0":4}',
  '{"b":1,"4294967295":2,"4294967294":3,"1":4,"01":5,"-1":6,"1.5":7}',
  '{"a":1,"b":2,"a":3}', '{"1":1,"a":2,"1":3}', '{"a":{"x":1},"a":[2]}',
  '{"__proto__":1,"constructor":2}', '{"":1,"":2}', '{"a":1,"A":2}',
  '{"10":1,"9":2,"100":3,"0":4,"x":5}',
  '{"b":{"2":1,"1":2,"b":3,"b":4},"a":[{"z":1,"z":2,"0":3}]}',
];
texts.forEach(addParse);

// Objects large enough for the hash table, with and without duplicates.
function bigObject(count, duplicateEvery) {
  const parts = [];
  for (let i = 0; i < count; i++) {
    parts.push(`"k${i}":${i}`);
    if (duplicateEvery && i % duplicateEvery === 0) parts.push(`"k${i >> 1}":"dup${i}"`);
  }
  return `{${parts.join(',')}}`;
}
addParse(bigObject(9, 0));
addParse(bigObject(9, 2));
addParse(bigObject(200, 0));
addParse(bigObject(200, 3));
addParse(bigObject(1000, 7));
{
  const keys = [];
  for (let i = 0; i < 100; i++) keys.push(`"${randomBelow(1000)}":${i}`, `"x${randomBelow(50)}":${i}`);
  addParse(`{${keys.join(',')}}`);
}

// Nesting: cJSON reads at most 1000 levels of arrays and objects.
for (const depth of [999, 1000, 1001]) {
  addParse('['.repeat(depth) + ']'.repeat(depth));
  addParse('{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1));
}

// Round trips of random values.
function randomValue(depth) {
  const kind = randomBelow(depth > 3 ? 4 : 6);
  if (kind === 0) return fromBits(random64());
  if (kind === 1) return randomString(randomBelow(8));
  if (kind === 2) return [true, false, null][randomBelow(3)];
  if (kind === 3) return randomBelow(2000) - 1000;
  if (kind === 4) {
    const array = [];
    for (let i = randomBelow(5); i > 0; i--) array.push(randomValue(depth + 1));
    return array;
  }
  const object = {};
  for (let i = randomBelow(5); i > 0; i--) object[randomString(randomBelow(4))] = randomValue(depth + 1);
  return object;
}
for (let i = 0; i < 300; i++) {
  const text = JSON.stringify(randomValue(0));
  addParse(text);
  // The same value with JSON whitespace (space, tab, newline) around the
  // tokens.
  addParse(JSON.stringify(JSON.parse(text), null, ' \t'));
}

process.stdout.write(lines.join('\n') + '\n');
