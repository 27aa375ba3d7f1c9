// GET /v2/ui: the operator's status page. One self-contained HTML document (inline style and
// script, nothing else to load), served without a token: it holds no data. The operator types
// the API token into it; every call it makes carries the token, which the page keeps in memory.
//
// The CSP allows exactly this page's script and stylesheet (by SHA-256, computed here from the
// text that is served), API calls to this origin, and nothing else: no other script, style,
// frame, form submission or base URL. Trusted Types ('none') makes any innerHTML-style sink throw,
// so data can only reach the DOM as text.
import { createHash } from 'node:crypto';
import type { HttpResult } from '../handler.js';
import { SCRIPT } from './script.js';
import { STYLE } from './style.js';

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

if (/<\/(script|style)/i.test(SCRIPT + STYLE)) throw new Error('the status page script or style contains a closing tag');

const BODY = `
<header>
  <h1>circuitry <span>status</span></h1>
  <div id="refresh-state" role="status" aria-live="polite"></div>
  <div id="session-actions" hidden>
    <button type="button" id="refresh-now">Refresh now</button>
    <button type="button" id="pause">Pause</button>
    <button type="button" id="sign-out" title="Forget the token and lock the page">Forget token</button>
  </div>
</header>
<main>
  <section id="login" class="panel">
    <h2>Sign in</h2>
    <!-- No name on the input and form-action 'none': the token can never be submitted in a URL. -->
    <form id="login-form" autocomplete="off" novalidate>
      <p>Enter an API token (one of <span class="mono">API_TOKENS</span>). The page keeps it in this tab's memory only:
        never in the address, in storage or in a cookie. Reloading or closing the tab forgets it.</p>
      <label for="token">API token</label>
      <div class="row">
        <input id="token" type="password" autocomplete="off" spellcheck="false" autocapitalize="off" aria-describedby="login-error">
        <button type="submit" id="login-submit" class="primary">Open</button>
      </div>
      <p id="login-error" class="error" role="alert" hidden></p>
    </form>
    <noscript><p class="error">This page needs JavaScript.</p></noscript>
  </section>

  <div id="dashboard" hidden>
    <section id="fleet" class="panel">
      <h2>Fleet <small>GET /v2/status</small></h2>
      <p id="fleet-error" class="error" role="alert" hidden></p>
      <div id="fleet-cards" class="cards"></div>
      <div id="fleet-samples" class="samples"></div>
    </section>

    <section id="circuits" class="panel">
      <h2>Circuits <small>GET /v2/circuits, 50 per page</small></h2>
      <p id="circuits-error" class="error" role="alert" hidden></p>
      <div class="toolbar">
        <label for="filter-status">Status</label>
        <select id="filter-status">
          <option value="">all</option>
          <option value="serving">serving</option>
          <option value="degraded">degraded</option>
          <option value="panic">panic</option>
          <option value="unavailable">unavailable</option>
          <option value="deleting">deleting</option>
        </select>
        <label for="filter-text">Worker or id</label>
        <input id="filter-text" type="search" placeholder="filter this page" autocomplete="off" spellcheck="false">
        <span id="filter-count" class="muted"></span>
        <span class="spacer"></span>
        <div class="pager">
          <button type="button" id="page-prev" disabled>‹ Previous</button>
          <span id="page-label" class="muted"></span>
          <button type="button" id="page-next" disabled>Next ›</button>
        </div>
      </div>
      <table id="circuit-table">
        <thead><tr><th></th><th>circuit</th><th>worker</th><th>frontend</th><th>status</th><th>routes</th><th>sync (database / etcd)</th><th>unload</th></tr></thead>
        <tbody id="circuit-rows"></tbody>
      </table>
    </section>

    <div class="two">
      <section id="transitions" class="panel">
        <h2>Route health transitions <small>GET /v2/transitions, newest 50</small></h2>
        <p id="transitions-error" class="error" role="alert" hidden></p>
        <table>
          <thead><tr><th>when</th><th>circuit</th><th>route</th><th>change</th><th>gen</th><th>last error</th></tr></thead>
          <tbody id="transition-rows"></tbody>
        </table>
      </section>
      <section id="locks" class="panel">
        <h2>Locks <small>GET /v2/locks: holders and waiters</small></h2>
        <p id="locks-error" class="error" role="alert" hidden></p>
        <table>
          <thead><tr><th>circuit</th><th>position</th><th>holder</th><th>age</th><th>lease TTL</th><th>lease</th></tr></thead>
          <tbody id="lock-rows"></tbody>
        </table>
      </section>
    </div>
  </div>
</main>`;

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>circuitry · status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>${BODY}
<script>${SCRIPT}</script>
</body>
</html>
`;

export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

export const STATUS_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': STATUS_PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export function statusPage(): HttpResult {
  return { statusCode: 200, headers: { ...STATUS_PAGE_HEADERS }, body: STATUS_PAGE_HTML };
}
