// Dashboard: shows what /health reports. Plain DOM, no framework, no external assets.
const status = document.getElementById('health-status');
const table = document.getElementById('health-checks');

async function refresh() {
  try {
    const res = await fetch('/health');
    const body = await res.json();
    status.textContent = `Status: ${body.status} (version ${body.version})`;
    status.className = body.status === 'ok' ? 'ok' : 'fail';
    const rows = Object.entries(body.checks).map(([name, check]) => {
      const tr = document.createElement('tr');
      for (const text of [name, check.ok ? 'ok' : `failed: ${check.error ?? ''}`, check.latency_ms != null ? `${check.latency_ms} ms` : '']) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      tr.className = check.ok ? 'ok' : 'fail';
      return tr;
    });
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = false;
  } catch (e) {
    status.textContent = `Worker unreachable: ${e.message}`;
    status.className = 'fail';
  }
}

refresh();
