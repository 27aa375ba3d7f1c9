// The status page's script (plain browser JavaScript, inlined into the page; its SHA-256 goes into
// the CSP's script-src). Rules it keeps:
//   - the API token lives in one variable of this closure: never in the URL, storage or a cookie;
//   - every value from the API reaches the DOM as a text node or an attribute (never as HTML; the
//     CSP's Trusted Types directive makes innerHTML with a string throw);
//   - at most one page of circuits (PAGE_SIZE rows) is in the DOM, whatever the fleet's size.
// Written without template literals so that it can live in this TypeScript template string.
export const SCRIPT = String.raw`
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

  // ---- the fleet ------------------------------------------------------------------------------
  function card(label, value, sub, cls, title) {
    return el('div', { class: 'card' + (cls ? ' ' + cls : ''), 'data-card': label, title: title || null }, [
      el('div', { class: 'label' }, label),
      el('div', { class: 'value' }, String(value)),
      el('div', { class: 'sub' }, sub || ' '),
    ]);
  }

  function renderFleet() {
    var f = state.fleet;
    var cards = $('fleet-cards');
    var samples = $('fleet-samples');
    if (!f) { cards.replaceChildren(); samples.replaceChildren(); return; }
    var by = (f.circuits && f.circuits.byStatus) || {};
    var list = [card('circuits', f.circuits ? f.circuits.total : 0, f.workers + ' worker' + (f.workers === 1 ? '' : 's'), null, 'live circuits, pending unloads included')];
    STATUSES.forEach(function (s) { list.push(card(s, by[s] || 0, null, s + ((by[s] || 0) > 0 && s !== 'serving' ? ' alert' : ''))); });
    var lag = f.syncLag || { behind: 0, maxGenerations: 0 };
    list.push(card('sync lag', lag.behind, lag.behind ? 'max ' + lag.maxGenerations + ' behind' : 'etcd is current', lag.behind ? 'alert' : null,
      'circuits whose generation etcd does not hold yet (the next sweep converges them)'));
    var pu = f.pendingUnloads || { count: 0, oldestRequestedAt: null };
    list.push(card('unloads', pu.count, pu.count ? 'oldest ' + ago(pu.oldestRequestedAt) : 'none pending', pu.count ? 'alert' : null, 'pending unloads: DELETE accepted, keys not removed yet'));
    list.push(card('releasing', f.deletedAwaitingRelease || 0, 'frontends held', null, 'deleted circuits whose port or subdomain is held until their keys are gone'));
    var ep = f.fencingEpoch;
    list.push(card('fencing epoch', ep ? ep.epoch : '—', ep ? 'since ' + ago(ep.startedAt) : 'none yet', null, ep ? 'started ' + ep.startedAt + ': ' + ep.reason : null));
    cards.replaceChildren.apply(cards, list);

    // The API names up to 20 circuits of each kind; a few are shown, the count says how many there are.
    var parts = [];
    function sample(title, count, items, text) {
      if (!items || !items.length) return;
      var shown = items.slice(0, 6);
      parts.push(el('div', { 'data-sample': title }, [
        el('b', null, title + ' (' + count + '): '),
        shown.map(function (x, i) { return [i ? ', ' : '', shortId(x.circuitId), text(x)]; }),
        count > shown.length ? el('span', { class: 'muted' }, ', and ' + (count - shown.length) + ' more') : null,
      ]));
    }
    function onWorker(x) { return ' (' + x.worker + ')'; }
    sample('panic', by.panic || 0, f.panic, onWorker);
    sample('unavailable', by.unavailable || 0, f.unavailable, onWorker);
    sample('behind etcd', lag.behind, lag.sample, function (x) { return ' gen ' + x.generation + '/' + (x.appliedGeneration === null ? 'none' : x.appliedGeneration); });
    samples.replaceChildren.apply(samples, parts);
    renderPager();
  }

  // ---- circuits -------------------------------------------------------------------------------
  function healthCounts(routes) {
    var n = { healthy: 0, unhealthy: 0, unknown: 0 };
    routes.forEach(function (r) { var s = r.health && r.health.status; n[s in n ? s : 'unknown']++; });
    return n;
  }
  function frontendText(c) {
    var f = c.frontend || {};
    return c.protocol + ' ' + (f.mode === 'port' ? ':' + f.port : f.mode === 'wildcard' ? f.subdomain + '.*' : '?');
  }
  function syncText(c) {
    var s = c.sync || { generation: c.generation, appliedGeneration: null };
    if (s.appliedGeneration === s.generation) return el('span', { title: 'etcd holds generation ' + s.generation }, 'gen ' + s.generation + ' ✓');
    return el('span', { class: 'lag', title: 'the next sweep converges etcd' }, 'gen ' + s.generation + ' · etcd ' + (s.appliedGeneration === null ? 'none' : s.appliedGeneration));
  }

  function filterMatches(c) {
    var status = $('filter-status').value;
    var text = $('filter-text').value.trim().toLowerCase();
    if (status && c.status !== status) return false;
    if (text && c.worker.toLowerCase().indexOf(text) < 0 && c.id.indexOf(text) < 0) return false;
    return true;
  }

  function renderCircuits() {
    var started = performance.now();
    var items = state.page ? state.page.items : [];
    var shown = items.filter(filterMatches);
    var rows = [];
    shown.forEach(function (c) {
      var open = state.expanded.has(c.id);
      rows.push(circuitRow(c, open));
      if (open) rows.push(routesRow(c));
    });
    if (!shown.length) {
      var why = !state.page ? (state.errors.circuits ? 'Could not load this page (the error is above); the next refresh tries again.' : 'Loading…') : items.length ? 'No circuit on this page matches the filter.' : state.pageIndex ? 'No circuits on this page any more.' : 'No circuits yet.';
      rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 8 }, why)));
    }
    var tbody = $('circuit-rows');
    tbody.replaceChildren.apply(tbody, rows);
    setText('filter-count', state.page && shown.length !== items.length ? shown.length + ' of ' + items.length + ' on this page match' : '');
    renderPager();
    $('circuit-table').setAttribute('data-render-ms', (performance.now() - started).toFixed(1));
  }

  function circuitRow(c, open) {
    var routes = c.routes || [];
    var n = healthCounts(routes);
    var healthText = !routes.length ? 'no routes'
      : !c.healthCheck ? routes.length + ' route' + (routes.length === 1 ? '' : 's') + ' · not health-checked'
      : routes.length + ' route' + (routes.length === 1 ? '' : 's') + ' · ' + n.healthy + ' healthy' + (n.unhealthy ? ' · ' + n.unhealthy + ' unhealthy' : '') + (n.unknown ? ' · ' + n.unknown + ' unknown' : '');
    var toggle = el('button', { type: 'button', 'aria-expanded': open ? 'true' : 'false', title: open ? 'Hide routes' : 'Show routes', 'data-toggle': c.id }, open ? '▾' : '▸');
    toggle.addEventListener('click', function () {
      if (state.expanded.has(c.id)) state.expanded.delete(c.id);
      else state.expanded.add(c.id);
      renderCircuits();
    });
    return el('tr', { class: 'circuit' + (open ? ' open' : ''), 'data-id': c.id, 'data-status': c.status }, [
      el('td', { class: 'toggle' }, toggle),
      el('td', { class: 'mono nowrap' }, c.id),
      el('td', null, c.worker),
      el('td', { class: 'mono nowrap' }, frontendText(c)),
      el('td', null, el('span', { class: 'badge s-' + c.status, 'data-field': 'status' }, c.status)),
      el('td', { 'data-field': 'routes' }, healthText),
      el('td', { 'data-field': 'sync' }, syncText(c)),
      el('td', { 'data-field': 'unload' }, c.unloadRequestedAt ? ['requested ', timeCell(c.unloadRequestedAt)] : el('span', { class: 'muted' }, '—')),
    ]);
  }

  function routesRow(c) {
    var routes = c.routes || [];
    var total = routes.reduce(function (s, r) { return s + (typeof r.trafficRatio === 'number' ? r.trafficRatio : 1); }, 0);
    var body = routes.map(function (r) {
      var h = r.health || { status: 'unknown', consecutiveSuccesses: 0, consecutiveFailures: 0, lastCheckedAt: null, lastError: null };
      var ratio = typeof r.trafficRatio === 'number' ? r.trafficRatio : 1;
      return el('tr', { class: 'route', 'data-route-id': r.routeId, 'data-health': h.status }, [
        el('td', { class: 'mono' }, r.routeId),
        el('td', { class: 'mono' }, r.host + ':' + r.port),
        el('td', { 'data-field': 'weight' }, ratio + ' (' + (total ? Math.round((ratio / total) * 1000) / 10 : 0) + ' %)'),
        el('td', null, el('span', { class: 'badge h-' + h.status, 'data-field': 'health' }, c.healthCheck ? h.status : 'not checked')),
        el('td', null, h.consecutiveSuccesses + ' ✓ / ' + h.consecutiveFailures + ' ✗'),
        el('td', { 'data-field': 'last-probe' }, timeCell(h.lastCheckedAt)),
        el('td', { 'data-field': 'last-error' }, h.lastError === null || h.lastError === undefined ? el('span', { class: 'muted' }, '—') : h.lastError),
      ]);
    });
    if (!body.length) body.push(el('tr', { class: 'empty' }, el('td', { colspan: 7 }, 'No routes: the circuit serves nothing.')));
    var hc = c.healthCheck;
    return el('tr', { class: 'routes', 'data-routes-of': c.id }, el('td', { colspan: 8 }, [
      el('div', { class: 'muted' }, hc ? 'Health check: GET ' + hc.path + ' every ' + hc.intervalSeconds + ' s, expects ' + hc.expectedStatus + ', unhealthy after ' + hc.unhealthyThreshold + ', healthy after ' + hc.healthyThreshold : 'Not health-checked: every route is published.'),
      el('table', { class: 'route-table' }, [
        el('thead', null, el('tr', null, ['route', 'address', 'weight (traffic ratio)', 'health', 'consecutive', 'last probe', 'last error'].map(function (h) { return el('th', null, h); }))),
        el('tbody', null, body),
      ]),
    ]));
  }

  function renderPager() {
    var i = state.pageIndex;
    var count = state.page ? state.page.items.length : 0;
    var total = state.fleet && state.fleet.circuits ? state.fleet.circuits.total : null;
    var first = i * PAGE_SIZE + 1;
    setText('page-label', 'Page ' + (i + 1) + (count ? ' · circuits ' + first + '–' + (first + count - 1) + (total !== null ? ' of ' + total : '') : ''));
    $('page-prev').disabled = i === 0;
    $('page-next').disabled = !(state.page && state.page.nextCursor);
  }

  function goPage(delta) {
    if (delta > 0) {
      if (!state.page || !state.page.nextCursor) return;
      state.cursors.length = state.pageIndex + 1;
      state.cursors.push(state.page.nextCursor);
      state.pageIndex++;
    } else {
      if (state.pageIndex === 0) return;
      state.pageIndex--;
    }
    state.page = null;
    renderCircuits();
    void loadCircuits().then(function () { renderRefreshState(running !== null); });
  }
  $('page-next').addEventListener('click', function () { goPage(1); });
  $('page-prev').addEventListener('click', function () { goPage(-1); });
  $('filter-status').addEventListener('change', renderCircuits);
  $('filter-text').addEventListener('input', renderCircuits);

  // ---- transitions and locks ------------------------------------------------------------------
  function renderTransitions() {
    var list = state.transitions || [];
    var rows = list.map(function (t) {
      return el('tr', { class: 'transition', 'data-circuit-id': t.circuitId, 'data-route-id': t.routeId, 'data-to': t.to }, [
        el('td', { class: 'nowrap' }, timeCell(t.at)),
        el('td', null, shortId(t.circuitId)),
        el('td', null, shortId(t.routeId)),
        el('td', { class: 'nowrap' }, [el('span', { class: 'badge h-' + t.from }, t.from), el('span', { class: 'arrow' }, '→'), el('span', { class: 'badge h-' + t.to }, t.to)]),
        el('td', null, String(t.generation)),
        el('td', null, t.lastError === null ? el('span', { class: 'muted' }, '—') : t.lastError),
      ]);
    });
    if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 6 }, state.transitions ? 'No route has changed health yet.' : 'Loading…')));
    var tbody = $('transition-rows');
    tbody.replaceChildren.apply(tbody, rows);
  }

  function renderLocks() {
    var list = state.locks || [];
    var rows = list.map(function (l) {
      return el('tr', { class: 'lock', 'data-circuit-id': l.circuitId, 'data-position': l.position }, [
        el('td', null, shortId(l.circuitId)),
        el('td', null, l.position === 0 ? el('span', { class: 'badge s-serving' }, 'holds') : el('span', { class: 'badge s-degraded' }, 'waits #' + l.position)),
        el('td', { class: 'mono' }, l.holder || '—'),
        el('td', { class: 'nowrap' }, l.ageSeconds === null ? '—' : l.ageSeconds + ' s'),
        el('td', { class: 'nowrap' }, l.ttlSeconds === null ? '—' : l.ttlSeconds + ' s'),
        el('td', { class: 'mono' }, l.leaseHex),
      ]);
    });
    if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 6 }, state.locks ? 'No lock is held or awaited.' : 'Loading…')));
    var tbody = $('lock-rows');
    tbody.replaceChildren.apply(tbody, rows);
  }

  function renderAll() {
    renderFleet();
    renderCircuits();
    renderTransitions();
    renderLocks();
    ['fleet', 'circuits', 'transitions', 'locks'].forEach(renderSectionError);
    renderRefreshState(false);
  }

  $('token').focus();
})();
`;
