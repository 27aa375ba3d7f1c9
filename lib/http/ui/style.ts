// The status page's stylesheet, inlined into the page (its SHA-256 goes into the CSP's style-src).
// No style attributes anywhere (CSP would refuse them): every visual state is a class.
export const STYLE = String.raw`
:root {
  --fg: #1d2330; --muted: #5d6677; --line: #dde2ea; --bg: #f5f7fa; --card: #fff; --accent: #2f5bd3;
  --ok: #1a7f37; --ok-bg: #dcf5e3; --warn: #8a5a00; --warn-bg: #fff1c7; --panic: #b3400b; --panic-bg: #ffe2d0;
  --bad: #b42318; --bad-bg: #fde2df; --gone: #5b4a86; --gone-bg: #ebe6f7; --unk: #5d6677; --unk-bg: #e9ecf1;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; font-size: 14px; color: var(--fg); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
header { display: flex; align-items: center; gap: 16px; padding: 10px 20px; background: #18202f; color: #fff; position: sticky; top: 0; z-index: 2; }
header h1 { font-size: 17px; margin: 0; font-weight: 600; letter-spacing: .2px; }
header h1 span { font-weight: 400; color: #aab4c8; }
#refresh-state { flex: 1; color: #cfd6e4; font-size: 13px; }
#refresh-state.has-errors { color: #ffc9bf; }
header button { background: #2b3547; color: #fff; border: 1px solid #3d4a62; }
header button:hover { background: #354159; }
main { padding: 16px 20px 40px; max-width: 1400px; margin: 0 auto; }
section.panel { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin-bottom: 16px; }
h2 { font-size: 15px; margin: 0 0 10px; display: flex; align-items: baseline; gap: 10px; }
h2 small { font-weight: 400; color: var(--muted); font-size: 12px; }
button { font: inherit; padding: 4px 10px; border-radius: 5px; border: 1px solid var(--line); background: #fff; color: var(--fg); cursor: pointer; }
button:hover:not(:disabled) { border-color: var(--accent); }
button:disabled { opacity: .45; cursor: default; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
input, select { font: inherit; padding: 4px 8px; border: 1px solid #c5ccd8; border-radius: 5px; background: #fff; color: var(--fg); }
.hidden, [hidden] { display: none !important; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
.nowrap { white-space: nowrap; }
.error { color: var(--bad); background: var(--bad-bg); border: 1px solid #f4b8b0; border-radius: 6px; padding: 6px 10px; margin: 8px 0; }
#login { max-width: 480px; margin: 60px auto; }
#login p { color: var(--muted); line-height: 1.45; }
#login label { display: block; font-weight: 600; margin: 14px 0 6px; }
#login .row { display: flex; gap: 8px; }
#login input { flex: 1; padding: 7px 10px; }
#login button { padding: 7px 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(100px, 1fr)); gap: 8px; }
.card { border: 1px solid var(--line); border-radius: 7px; padding: 6px 10px; background: #fbfcfe; min-width: 0; }
.card .label { color: var(--muted); font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.card .value { font-size: 20px; font-weight: 600; margin-top: 1px; }
.card .sub { color: var(--muted); font-size: 11.5px; margin-top: 1px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.card.serving .value { color: var(--ok); } .card.degraded .value { color: var(--warn); } .card.panic .value { color: var(--panic); }
.card.unavailable .value { color: var(--bad); } .card.deleting .value { color: var(--gone); }
.card.alert { border-color: #f4b8b0; background: #fff8f7; }
.samples { margin-top: 8px; font-size: 12.5px; line-height: 1.6; }
.samples > div { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.samples b { font-weight: 600; }
.toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; margin-bottom: 8px; }
.toolbar .spacer { flex: 1; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px; border-bottom: 1px solid var(--line); padding: 5px 8px; white-space: nowrap; }
td { border-bottom: 1px solid #eef1f5; padding: 5px 8px; vertical-align: top; }
tr.circuit:hover td { background: #f8faff; }
tr.circuit.open td { background: #f2f5fc; }
td.toggle { width: 28px; padding: 3px 4px; }
td.toggle button { padding: 0 6px; border: none; background: transparent; font-size: 13px; }
tr.routes > td { background: #f7f9fd; padding: 4px 12px 10px 36px; }
table.route-table th { background: transparent; }
table.route-table td { border-bottom: 1px solid #e7ebf2; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.s-serving, .h-healthy { color: var(--ok); background: var(--ok-bg); }
.s-degraded { color: var(--warn); background: var(--warn-bg); }
.s-panic { color: var(--panic); background: var(--panic-bg); }
.s-unavailable, .h-unhealthy { color: var(--bad); background: var(--bad-bg); }
.s-deleting { color: var(--gone); background: var(--gone-bg); }
.h-unknown { color: var(--unk); background: var(--unk-bg); }
.lag { color: var(--warn); font-weight: 600; }
.empty td { color: var(--muted); text-align: center; padding: 16px; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 1100px) { .two { grid-template-columns: 1fr; } }
.two section.panel { margin-bottom: 0; overflow-x: auto; }
.pager { display: flex; align-items: center; gap: 8px; }
.arrow { color: var(--muted); padding: 0 4px; }
`;
