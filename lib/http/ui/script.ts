// The status page's script (plain browser JavaScript, inlined into the page; its SHA-256 goes into
// the CSP's script-src). Rules it keeps:
//   - the API token lives in one variable of this closure: never in the URL, storage or a cookie;
//   - every value from the API reaches the DOM as a text node or an attribute (never as HTML; the
//     CSP's Trusted Types directive makes innerHTML with a string throw);
//   - at most one page of circuits (PAGE_SIZE rows) is in the DOM, whatever the fleet's size.
// Written without template literals so that it can live in this TypeScript template string.
// Its views (the DOM built from the state kept here) are in script-views.ts, joined into the same
// closure below.
import { VIEWS } from './script-views.js';

const CORE = String.raw`
(function () {
  'use strict';
  var REFRESH_MS = 5000;
  var PAGE_SIZE = 50;
  var TIMEOUT_MS = 15000;
  var STATUSES = ['serving', 'degraded', 'panic', 'unavailable', 'deleting'];
  // The API lives next to this page (/v2/ui -> /v2/status ...), also behind a base path.
  var base = new URL('./', location.origin + location.pathname);

  // The bearer token. Only here: forgotten on reload, "Forget token" or a 401.
  var token = null;

  var state = newState();
  var timer = null;
  var running = null; // the refresh in flight
  var runningSession = 0; // ...and the sign-in it belongs to
  var session = 0; // counts sign-ins and sign-outs: answers for an earlier one are dropped
  var paused = false;
  var circuitsSeq = 0;

  function newState() {
    return { fleet: null, page: null, cursors: [null], pageIndex: 0, transitions: null, locks: null, expanded: new Set(), lastRefresh: null, errors: {} };
  }

  function $(id) { return document.getElementById(id); }

  // el('td', {class: 'x', 'data-id': id}, ['text', node, null]): text children become text nodes.
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        e.setAttribute(k, v === true ? '' : String(v));
      });
    }
    append(e, children);
    return e;
  }
  function append(e, children) {
    if (children === null || children === undefined) return;
    if (!Array.isArray(children)) children = [children];
    children.forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      if (Array.isArray(c)) append(e, c);
      else if (typeof c === 'object' && c.nodeType) e.appendChild(c);
      else e.appendChild(document.createTextNode(String(c)));
    });
  }
  function setText(id, text) { $(id).textContent = text; }
  function show(id, visible) { $(id).hidden = !visible; }

  // ---- time -----------------------------------------------------------------------------------
  function ago(iso) {
    if (!iso) return '—';
    var t = Date.parse(iso);
    if (isNaN(t)) return String(iso);
    var s = Math.round((Date.now() - t) / 1000);
    if (s < 0) s = 0;
    if (s < 90) return s + ' s ago';
    if (s < 5400) return Math.round(s / 60) + ' min ago';
    if (s < 129600) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }
  function clock(ms) { return new Date(ms).toLocaleTimeString(); }
  function timeCell(iso) { return el('span', { title: iso || null }, ago(iso)); }
  // The first 8 characters of a UUID, the whole of it on hover.
  function shortId(id) { return el('span', { class: 'mono', title: id }, String(id).slice(0, 8)); }

  // ---- the API --------------------------------------------------------------------------------
  function ApiError(status, message) { this.status = status; this.message = message; }

  async function api(path, bearer) {
    var ctrl = new AbortController();
    var t = setTimeout(function () { ctrl.abort(); }, TIMEOUT_MS);
    try {
      var res;
      try {
        res = await fetch(new URL(path, base), {
          headers: { authorization: 'Bearer ' + bearer, accept: 'application/json' },
          cache: 'no-store', credentials: 'omit', redirect: 'error', referrerPolicy: 'no-referrer', signal: ctrl.signal,
        });
      } catch (err) {
        throw new ApiError(0, ctrl.signal.aborted ? 'no answer within ' + TIMEOUT_MS / 1000 + ' s' : 'the API could not be reached (' + (err && err.message) + ')');
      }
      var text = await res.text();
      var body = null;
      try { body = text ? JSON.parse(text) : null; } catch (err) { body = null; }
      if (!res.ok) {
        var title = body && typeof body.title === 'string' ? body.title : res.statusText;
        var detail = body && typeof body.detail === 'string' ? body.detail : '';
        throw new ApiError(res.status, res.status + ' ' + title + (detail ? ': ' + detail : ''));
      }
      if (body === null || typeof body !== 'object') throw new ApiError(res.status, 'the API answered ' + res.status + ' without a JSON body');
      return body;
    } finally {
      clearTimeout(t);
    }
  }

  // ---- sign in / out --------------------------------------------------------------------------
  function loginError(message) {
    var p = $('login-error');
    p.textContent = message;
    p.hidden = false;
    $('token').focus();
  }

  $('login-form').addEventListener('submit', async function (ev) {
    ev.preventDefault();
    var input = $('token');
    var candidate = input.value.trim();
    input.value = '';
    if (candidate === '') return loginError('Enter an API token (one of API_TOKENS).');
    if (!/^[\x21-\x7e]+$/.test(candidate)) return loginError('A token is printable ASCII without spaces; check what was pasted.');
    var submit = $('login-submit');
    submit.disabled = true;
    setText('login-submit', 'Checking…');
    try {
      // Any answer but 401 means the token passed the API's check (it runs before everything else).
      await api('circuits?limit=1', candidate);
    } catch (err) {
      if (err.status === 401) return loginError('The API refused this token (' + err.message + '). Check it and try again.');
      if (err.status === 0) return loginError('Could not check the token: ' + err.message + '.');
    } finally {
      submit.disabled = false;
      setText('login-submit', 'Open');
    }
    token = candidate;
    candidate = null;
    session++;
    $('login-error').hidden = true;
    state = newState();
    paused = false;
    setText('pause', 'Pause');
    show('login', false);
    show('dashboard', true);
    show('session-actions', true);
    renderAll();
    void refresh();
  });

  function signOut(message) {
    token = null;
    session++;
    clearTimeout(timer);
    timer = null;
    circuitsSeq++;
    state = newState();
    show('dashboard', false);
    show('session-actions', false);
    show('login', true);
    setText('refresh-state', '');
    $('login-error').hidden = true;
    if (message) loginError(message);
    else $('token').focus();
  }

  $('sign-out').addEventListener('click', function () { signOut(null); });

  // ---- refreshing -----------------------------------------------------------------------------
  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (token === null || paused || document.hidden) return;
    timer = setTimeout(function () { void refresh(); }, REFRESH_MS);
  }

  function refresh() {
    if (token === null) return Promise.resolve();
    if (running && runningSession === session) return running;
    clearTimeout(timer);
    timer = null;
    renderRefreshState(true);
    var mine = session;
    runningSession = mine;
    var p = Promise.all([
      section('fleet', function () { return api('status', token); }, function (b) { state.fleet = b; }, renderFleet),
      loadCircuits(),
      section('transitions', function () { return api('transitions?limit=50', token); }, function (b) { state.transitions = b.transitions; }, renderTransitions),
      section('locks', function () { return api('locks', token); }, function (b) { state.locks = b.locks; }, renderLocks),
    ]).then(function () {
      if (running === p) running = null;
      if (token === null || mine !== session) return;
      state.lastRefresh = Date.now();
      renderRefreshState(false);
      schedule();
    });
    running = p;
    return p;
  }

  // One section's load: keeps the answer (store) and shows it (render). On an error the section
  // says so and keeps its last data; a 401 signs out. Answers for an earlier sign-in are dropped.
  async function section(name, load, store, render) {
    var mine = session;
    try {
      var body = await load();
      if (mine !== session) return;
      store(body);
      delete state.errors[name];
    } catch (err) {
      if (mine !== session || token === null) return;
      if (err.status === 401) return signOut('The API no longer accepts the token (' + err.message + '). Sign in again.');
      state.errors[name] = { message: err.message, at: Date.now() };
    }
    render();
    renderSectionError(name);
  }

  // The current page of circuits; an answer for a page no longer asked for is dropped.
  function loadCircuits() {
    var seq = ++circuitsSeq;
    var cursor = state.cursors[state.pageIndex];
    var started = performance.now();
    return section('circuits', function () {
      return api('circuits?limit=' + PAGE_SIZE + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''), token);
    }, function (b) {
      if (seq === circuitsSeq) state.page = b;
    }, function () {
      if (seq !== circuitsSeq) return;
      $('circuit-table').setAttribute('data-load-ms', (performance.now() - started).toFixed(1));
      renderCircuits();
    });
  }

  function renderRefreshState(busy) {
    var box = $('refresh-state');
    var failed = Object.keys(state.errors);
    var parts = [];
    if (busy) parts.push('Refreshing…');
    else if (paused) parts.push('Paused.');
    else if (document.hidden) parts.push('Paused while the tab is hidden.');
    if (state.lastRefresh !== null) parts.push('Last refresh ' + clock(state.lastRefresh) + (failed.length ? ' with errors (' + failed.join(', ') + ')' : ''));
    if (!busy && !paused && !document.hidden && token !== null) parts.push('· every ' + REFRESH_MS / 1000 + ' s');
    box.textContent = parts.join(' ');
    box.classList.toggle('has-errors', failed.length > 0);
    box.setAttribute('data-last-refresh', state.lastRefresh === null ? '' : String(state.lastRefresh));
  }

  function renderSectionError(name) {
    var p = $(name + '-error');
    var e = state.errors[name];
    p.hidden = !e;
    p.textContent = e ? 'Refresh failed at ' + clock(e.at) + ': ' + e.message + (hasData(name) ? ' — showing the last data received.' : '') : '';
  }
  function hasData(name) {
    return name === 'fleet' ? state.fleet !== null : name === 'circuits' ? state.page !== null : name === 'transitions' ? state.transitions !== null : state.locks !== null;
  }

  document.addEventListener('visibilitychange', function () {
    if (token === null) return;
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
      renderRefreshState(false);
    } else if (!paused) {
      void refresh();
    }
  });
  $('refresh-now').addEventListener('click', function () { void refresh(); });
  $('pause').addEventListener('click', function () {
    paused = !paused;
    setText('pause', paused ? 'Resume' : 'Pause');
    if (paused) {
      clearTimeout(timer);
      timer = null;
      renderRefreshState(false);
    } else {
      void refresh();
    }
  });
`;

const START = "  $('token').focus();\n})();\n";

/** The whole script: one closure, the core, then the views, then what starts it. */
export const SCRIPT = CORE + VIEWS + START;
