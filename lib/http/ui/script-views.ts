// The status page script's views: the functions that turn what the script keeps (the fleet, the
// current page of circuits, transitions, locks) into DOM, by the rules stated in script.ts (text
// nodes and attributes only, one page of rows). Plain browser JavaScript, a part of SCRIPT's
// closure (joined there), written without template literals like the rest of it.
export const VIEWS = String.raw`
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

`;
