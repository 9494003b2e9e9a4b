// Decimal strings stay strings: prices and quantities are compared digit by digit, never
// through a float (the API sends them as the log holds them, e.g. "45000.10").

function parts(text) {
  const negative = text.startsWith("-");
  const digits = negative ? text.slice(1) : text;
  const [whole, fraction = ""] = digits.split(".");
  return { negative, whole: whole.replace(/^0+(?=\d)/, ""), fraction: fraction.replace(/0+$/, "") };
}

function compareMagnitude(a, b) {
  if (a.whole.length !== b.whole.length) return a.whole.length < b.whole.length ? -1 : 1;
  if (a.whole !== b.whole) return a.whole < b.whole ? -1 : 1;
  const width = Math.max(a.fraction.length, b.fraction.length);
  const fa = a.fraction.padEnd(width, "0");
  const fb = b.fraction.padEnd(width, "0");
  return fa === fb ? 0 : fa < fb ? -1 : 1;
}

export function isZero(text) {
  return !/[1-9]/.test(text);
}

// -1, 0 or 1 as decimal string a is below, equal to or above b.
export function compareDecimal(a, b) {
  const pa = parts(a);
  const pb = parts(b);
  const na = pa.negative && !isZero(a);
  const nb = pb.negative && !isZero(b);
  if (na !== nb) return na ? -1 : 1;
  const order = compareMagnitude(pa, pb);
  return na ? -order : order;
}

// A well-formed non-negative decimal as typed in a form (checked before it is sent; the
// service checks the grid itself).
export function looksDecimal(text) {
  return /^\d+(\.\d+)?$/.test(text);
}
