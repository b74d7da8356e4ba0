// Reference renderings from HF's @huggingface/jinja (what transformers.js uses for chat templates).
// usage: node jinja_ref.js CASES_JSON
// CASES_JSON: [{"t": template, "v": {variables}, "now": unix_seconds}, ...]
// prints JSON: [{"ok": rendered} | {"err": message}, ...]
'use strict';
const fs = require('fs');

async function main() {
  const { Template } = await import('@huggingface/jinja');
  const cases = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const RealDate = Date;
  const out = [];
  for (const c of cases) {
    const ms = (c.now || 0) * 1000;
    // strftime_now() reads `new Date()`: pin it to the case's time
    global.Date = class extends RealDate {
      constructor(...a) { if (a.length === 0) super(ms); else super(...a); }
      static now() { return ms; }
    };
    try {
      out.push({ ok: new Template(c.t).render(c.v) });
    } catch (e) {
      out.push({ err: String(e && e.message ? e.message : e) });
    }
    global.Date = RealDate;
  }
  process.stdout.write(JSON.stringify(out));
}
main().catch((e) => { console.error(String(e)); process.exit(2); });
