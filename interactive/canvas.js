// The annotation canvas of the interactive demo (interactive/canvas.py): runs as gr.HTML's js_on_load,
// with `element` (the component), `props` (props.value: the JSON the page's Python handlers read),
// `server` (the Python functions view, edit, undo, redo) and `watch`.
// The server's session is the truth: every stroke, click and box is sent when it is made, with the
// state of the frame it was drawn on; the reply carries the new masks and state. Edits are sent one at
// a time, each with the state the previous reply gave, so fast strokes never overtake each other.
const $ = (selector) => element.querySelector(selector);
const view = $('.imsfr-view'), ctx = view.getContext('2d');
const strip = $('.imsfr-strip'), slider = $('.imsfr-slider');
const paletteOf = (k) => PALETTE.slice(3 * k, 3 * k + 3);
const hex = (rgb) => '#' + rgb.map((v) => v.toString(16).padStart(2, '0')).join('');
const s = {
  session: null, frames: 1, width: 1, height: 1, frame: 0, object: 1, tool: 'brush', radius: 4,
  token: null, tokens: {}, image: null, labels: null, info: {annotated: {}, written: [], objects: []},
  colours: {}, hidden: new Set(), clicks: [], drawing: null, box: null, corner: null, dragStart: null, pending: Promise.resolve(), busy: 0,
  request: 0, version: -1, tab: Math.random().toString(36).slice(2, 10), stale: false,
};

function publish() {  // what the page's buttons (propagate, export, ...) read
  props.value = JSON.stringify({session: s.session, frame: s.frame, object: s.object, tab: s.tab,
                                version: s.version, state: s.token});
}

function say(text, kind) {
  const line = $('.imsfr-status');
  line.textContent = text || '';
  line.dataset.kind = kind || 'info';
}

function colour(k) {
  return s.colours[k] || hex(paletteOf(k));
}

// ---- drawing -----------------------------------------------------------------------
const overlay = document.createElement('canvas');
function paintOverlay() {
  overlay.width = s.width; overlay.height = s.height;
  if (!s.labels) return;
  const o = overlay.getContext('2d'), data = o.createImageData(s.width, s.height), px = data.data;
  const rgb = {};
  for (let i = 0; i < s.labels.length; i++) {
    const k = s.labels[i];
    if (!k || s.hidden.has(k)) continue;
    const c = rgb[k] || (rgb[k] = colour(k).match(/\w\w/g).map((v) => parseInt(v, 16)));
    px[4 * i] = c[0]; px[4 * i + 1] = c[1]; px[4 * i + 2] = c[2]; px[4 * i + 3] = 128;
  }
  o.putImageData(data, 0, 0);
}

function render() {
  view.width = s.width; view.height = s.height;
  ctx.clearRect(0, 0, s.width, s.height);
  if (s.image) ctx.drawImage(s.image, 0, 0, s.width, s.height);
  ctx.drawImage(overlay, 0, 0);
  const c = colour(s.object);
  if (s.drawing) {
    ctx.strokeStyle = s.tool === 'eraser' ? 'rgba(255,255,255,0.8)' : c;
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = 2 * s.radius; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
    ctx.beginPath();
    s.drawing.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (s.drawing.length === 1) ctx.arc(s.drawing[0][0], s.drawing[0][1], s.radius, 0, 2 * Math.PI);
    s.drawing.length === 1 ? ctx.fill() : ctx.stroke();
  }
  if (s.box) {
    const [x0, y0, x1, y1] = s.box;
    ctx.strokeStyle = c; ctx.lineWidth = Math.max(1, s.width / 400); ctx.setLineDash([4, 3]);
    ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    ctx.setLineDash([]);
  }
  const dot = Math.max(2, s.width / 160);
  for (const [x, y, positive] of s.clicks) {
    ctx.fillStyle = positive ? '#22c55e' : '#ef4444';
    ctx.strokeStyle = 'white'; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.arc(x, y, dot, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
  }
  renderStrip();
}

function inRanges(t) {
  return s.info.written.some(([a, b]) => a <= t && t <= b);
}

function renderStrip() {
  const w = strip.clientWidth || 600, h = 14;
  strip.width = w; strip.height = h;
  const g = strip.getContext('2d');
  g.fillStyle = '#e5e7eb'; g.fillRect(0, 0, w, h);
  const x = (t) => (t / Math.max(1, s.frames)) * w, cell = Math.max(1, w / s.frames);
  g.fillStyle = '#9ca3af';
  for (const [a, b] of s.info.written) g.fillRect(x(a), 4, x(b + 1) - x(a), h - 8);
  for (const [t, objects] of Object.entries(s.info.annotated)) {
    g.fillStyle = colour(objects[0]);
    g.fillRect(x(+t), 0, Math.max(2, cell), h);
  }
  g.fillStyle = '#111827';
  g.fillRect(x(s.frame) + cell / 2 - 1, 0, 2, h);
  const annotated = Object.keys(s.info.annotated).map(Number);
  $('.imsfr-frame').textContent = `frame ${s.frame} / ${s.frames - 1}` +
    (s.info.annotated[s.frame] ? ` · annotated: objects ${s.info.annotated[s.frame].join(', ')}` : '') +
    (!s.info.annotated[s.frame] && inRanges(s.frame) ? ' · propagated' : '');
  element.dataset.annotated = JSON.stringify(annotated);
  renderObjects();
}

function renderObjects() {
  const ids = [...new Set([...s.info.objects, s.object])].sort((a, b) => a - b);
  const bar = $('.imsfr-objects');
  const key = JSON.stringify([ids, s.object, [...s.hidden], s.colours]);
  if (bar.dataset.key === key) return;
  bar.dataset.key = key;
  bar.innerHTML = '';
  for (const k of ids) {
    const item = document.createElement('span');
    item.className = 'imsfr-object' + (k === s.object ? ' selected' : '');
    item.dataset.object = k;
    item.innerHTML = `<input type="color" value="${colour(k)}" title="colour of object ${k}">` +
      `<button type="button" class="pick">object ${k}</button>` +
      `<label title="show or hide object ${k}"><input type="checkbox" ${s.hidden.has(k) ? '' : 'checked'}>show</label>`;
    item.querySelector('.pick').onclick = () => selectObject(k);
    item.querySelector('input[type=color]').oninput = (e) => { s.colours[k] = e.target.value; paintOverlay(); render(); };
    item.querySelector('input[type=checkbox]').onchange = (e) => {
      e.target.checked ? s.hidden.delete(k) : s.hidden.add(k); paintOverlay(); render();
    };
    bar.appendChild(item);
  }
  const add = document.createElement('button');
  add.type = 'button'; add.className = 'imsfr-new-object'; add.textContent = '+ new object';
  add.onclick = () => selectObject(Math.min(255, Math.max(0, ...ids) + 1));
  bar.appendChild(add);
}

// ---- talking to the server -----------------------------------------------------------
function decode(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error('could not decode an image from the server'));
    image.src = url;
  });
}

async function setLabels(url) {
  const image = await decode(url);
  const c = document.createElement('canvas');
  c.width = s.width; c.height = s.height;
  const g = c.getContext('2d');
  g.drawImage(image, 0, 0);
  const px = g.getImageData(0, 0, s.width, s.height).data, labels = new Uint8Array(s.width * s.height);
  for (let i = 0; i < labels.length; i++) labels[i] = px[4 * i];
  s.labels = labels;
  paintOverlay();
}

async function apply(reply, t) {  // a reply of view, edit, undo or redo about frame t
  if (reply.info) s.info = reply.info;
  if (reply.version !== undefined) s.version = reply.version;
  if (reply.state) s.tokens[t] = reply.state;
  if (t !== s.frame) { renderStrip(); publish(); return; }  // an edit of a frame the page has left since
  if (reply.image) s.image = await decode(reply.image);
  if (reply.labels) await setLabels(reply.labels);
  if (reply.state) s.token = reply.state;
  s.stale = false;
  $('.imsfr-notice').textContent = '';
  render();
  publish();
  element.dataset.state = s.token || '';
}

async function show(t) {  // go to frame t; only the latest request is applied
  t = Math.max(0, Math.min(s.frames - 1, t | 0));
  if (t !== s.frame) { s.clicks = []; s.box = null; s.corner = null; s.token = null; element.dataset.state = ''; }
  s.frame = t; slider.value = t;
  publish();
  renderStrip();
  if (!s.session) return;
  const request = ++s.request;
  element.dataset.loading = '1';
  await s.pending;
  const reply = await server.view({session: s.session, frame: t, tab: s.tab});
  if (request !== s.request) return;
  element.dataset.loading = '';
  if (!reply.ok) return say(reply.message, 'error');
  await apply(reply, t);
}

function send(call, payload) {  // edits, one at a time, each with the state the last reply gave
  const frame = s.frame, object = s.object;  // what it was drawn on, whatever the page shows when it is sent
  s.busy++;
  element.dataset.busy = s.busy;
  s.pending = s.pending.then(async () => {
    try {
      const reply = await server[call]({session: s.session, frame, object, state: s.tokens[frame] ?? null,
                                        tab: s.tab, ...payload});
      if (!reply.ok) {
        say(reply.message, reply.stale ? 'stale' : 'error');
        if (reply.stale && frame === s.frame) { s.clicks = []; s.stale = true; await reloadQuietly(); }
        return;
      }
      if ((call === 'undo' || call === 'redo') && reply.frame !== s.frame) {  // show what was undone
        s.frame = reply.frame; slider.value = reply.frame; s.clicks = [];
        if (reply.image === undefined) {
          const fresh = await server.view({session: s.session, frame: reply.frame, tab: s.tab});
          if (fresh.ok) await apply(fresh, reply.frame);
        }
      }
      await apply(reply, reply.frame);
      say(reply.message, 'saved');
    } catch (error) {
      say(`the server did not answer (${error.message || error}); reload the page`, 'error');
    } finally {
      s.busy--;
      element.dataset.busy = s.busy;
      s.drawing = null;
      render();
    }
  });
  return s.pending;
}

async function reloadQuietly() {
  const t = s.frame, reply = await server.view({session: s.session, frame: t, tab: s.tab});
  if (reply.ok) {
    const message = $('.imsfr-status').textContent;
    await apply(reply, t);
    say(message, 'stale');
  }
}

function selectObject(k) {
  if (k < 1 || k > 255) return;
  s.object = k; s.clicks = []; s.box = null; s.corner = null;
  publish(); render();
}

function selectTool(tool) {
  s.tool = tool; s.clicks = []; s.box = null; s.corner = null;
  for (const b of element.querySelectorAll('.imsfr-tool')) b.classList.toggle('selected', b.dataset.tool === tool);
  view.dataset.tool = tool;
  render();
}

// ---- pointer input -----------------------------------------------------------------------
function at(event) {  // pointer position in pixels of the working-size frame
  const r = view.getBoundingClientRect();
  return [(event.clientX - r.left) * s.width / r.width, (event.clientY - r.top) * s.height / r.height];
}

view.addEventListener('contextmenu', (e) => e.preventDefault());
view.addEventListener('pointerdown', (e) => {
  if (!s.session || !s.image) return;
  if (!s.token) return say(`frame ${s.frame} is loading: draw when it shows`, 'info');
  view.setPointerCapture(e.pointerId);
  const p = at(e);
  if (s.tool === 'brush' || s.tool === 'eraser') s.drawing = [p];
  else if (s.tool === 'box') { s.dragStart = p; s.box = [...(s.corner || p), ...p]; }
  render();
});
view.addEventListener('pointermove', (e) => {
  const p = at(e);
  if (s.drawing) s.drawing.push(p);
  else if (s.tool === 'box' && (s.dragStart || s.corner)) s.box = [...(s.dragStart || s.corner), ...p];
  else return;
  render();
});
view.addEventListener('pointerup', (e) => {
  const p = at(e), round = (v) => +v.toFixed(2);
  if (!s.token) { s.drawing = null; s.dragStart = null; return; }  // pointerdown said the frame is loading
  if (s.drawing) {
    send('edit', {tool: s.tool, points: s.drawing.map(([x, y]) => [round(x), round(y)]), radius: s.radius});
  } else if (s.tool === 'click' && s.image) {
    const positive = !(e.button === 2 || e.shiftKey || e.altKey);
    if (!s.clicks.length && !positive) return say('the first click selects the object: a left click', 'error');
    s.clicks.push([round(p[0]), round(p[1]), positive]);
    render();
    send('edit', {tool: 'click', clicks: s.clicks});
  } else if (s.tool === 'box' && s.dragStart) {
    const start = s.dragStart;
    s.dragStart = null;
    const dragged = Math.hypot(p[0] - start[0], p[1] - start[1]) >= 3;
    if (!dragged && !s.corner) {  // a click: the first corner; the next click is the opposite one
      s.corner = start;
      return say('box: click the opposite corner (or drag a box)', 'info');
    }
    const box = [...(dragged ? start : s.corner), ...p].map(round);
    s.corner = null;
    s.box = box;
    send('edit', {tool: 'box', box}).then(() => { s.box = null; render(); });
  }
});

// ---- controls ------------------------------------------------------------------------------
slider.addEventListener('input', () => show(+slider.value));
$('.imsfr-prev').onclick = () => show(s.frame - 1);
$('.imsfr-next').onclick = () => show(s.frame + 1);
$('.imsfr-undo').onclick = () => send('undo', {});
$('.imsfr-redo').onclick = () => send('redo', {});
$('.imsfr-reload').onclick = () => show(s.frame);
$('.imsfr-radius').addEventListener('input', (e) => { s.radius = +e.target.value; });
for (const b of element.querySelectorAll('.imsfr-tool')) b.onclick = () => selectTool(b.dataset.tool);
const pickStrip = (e) => {
  const r = strip.getBoundingClientRect();
  show(Math.floor(((e.clientX - r.left) / r.width) * s.frames));
};
strip.addEventListener('pointerdown', (e) => { strip.setPointerCapture(e.pointerId); pickStrip(e); });
strip.addEventListener('pointermove', (e) => { if (e.buttons) pickStrip(e); });

const KEYS = {b: 'brush', e: 'eraser', c: 'click', x: 'box'};
document.addEventListener('keydown', (e) => {
  const target = e.target;
  if (target && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName)) &&
      target.type !== 'range' && target.type !== 'checkbox') return;
  const key = e.key.toLowerCase();
  const button = (id) => document.querySelector(`#${id}`)?.click();
  if ((e.ctrlKey || e.metaKey) && key === 'z') send(e.shiftKey ? 'redo' : 'undo', {});
  else if ((e.ctrlKey || e.metaKey) && key === 'y') send('redo', {});
  else if (e.ctrlKey || e.metaKey || e.altKey) return;
  else if (key === 'arrowleft' || key === 'a') show(s.frame - 1);
  else if (key === 'arrowright' || key === 'd') show(s.frame + 1);
  else if (/^[1-9]$/.test(key)) selectObject(+key);
  else if (KEYS[key]) selectTool(KEYS[key]);
  else if (key === 'p') button(e.shiftKey ? 'backward' : 'forward');
  else if (key === 'escape') { s.clicks = []; s.box = null; s.corner = null; render(); button('cancel'); }
  else if (key === 'r') show(s.frame);
  else if (key === '[' || key === ']') {
    s.radius = Math.max(1, Math.min(64, s.radius + (key === ']' ? 1 : -1)));
    $('.imsfr-radius').value = s.radius;
  } else return;
  e.preventDefault();
});

// ---- commands from the page's Python handlers (props.value with a nonce) --------------------------
let seen = null;
async function command() {
  let c;
  try { c = JSON.parse(props.value || '{}'); } catch (error) { return; }
  if (c.nonce === undefined || c.nonce === seen) return;
  seen = c.nonce;
  if (c.session !== s.session) {  // another video or session: start over
    Object.assign(s, {session: c.session, frames: c.frames, width: c.width, height: c.height, token: null,
                      tokens: {}, image: null, labels: null, clicks: [], box: null, hidden: new Set(), colours: {}});
    slider.max = Math.max(0, c.frames - 1);
    s.radius = Math.max(1, Math.round(Math.min(c.width, c.height) / 60));
    $('.imsfr-radius').value = s.radius;
    s.frame = -1;
    element.dataset.state = '';  // nothing to draw on until the new session's frame shows
    element.dataset.session = c.session || '';
  }
  if (c.info) s.info = c.info;
  if (c.message) say(c.message, c.kind || 'info');
  if (c.frame !== undefined && (c.goto || c.frame !== s.frame || s.frame < 0)) return show(c.frame);
  if (c.refresh && !s.drawing && !s.busy) return show(s.frame);
  if (c.states && s.token && c.states[s.frame] && c.states[s.frame] !== s.token && !s.busy) {
    $('.imsfr-notice').textContent = 'this frame changed in another tab: press R (or Reload) to see it';
  }
  render();
  publish();  // the command replaced props.value: the buttons read the canvas's frame from it again
}
watch('value', command);
selectTool('brush');
command();
