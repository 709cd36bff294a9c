// Lumen's built-in viewer. Everything it shows comes from the DICOMweb rendered and
// thumbnail resources; the browser decodes only JPEG and PNG.
(function () {
  'use strict';
  var body = document.body;
  var DW = body.dataset.dicomweb || '/dicom-web';
  var params = new URLSearchParams(location.search);
  var TOKEN = params.get('token') || '';
  var DIAGNOSTIC = params.get('quality') === 'diagnostic';
  var MEDIA = DIAGNOSTIC ? 'image/png' : 'image/jpeg';

  // url adds the link token (if the page has one) to a URL of this server.
  function url(path, q) {
    var p = new URLSearchParams(q || {});
    if (TOKEN) p.set('token', TOKEN);
    var s = p.toString();
    return path + (s ? (path.indexOf('?') < 0 ? '?' : '&') + s : '');
  }

  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    });
    (kids || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }

  // personName shows a DICOM person name (PS3.5 6.2.1: component groups alphabetic,
  // ideographic and phonetic; components Family^Given^Middle^Prefix^Suffix) the way
  // radiology lists do: "FAMILY, Given Middle", from the alphabetic group (else the
  // ideographic, else the phonetic), prefix and suffix left out, missing components
  // skipped.
  function personName(v) {
    var groups = typeof v === 'string' ? v.split('=') : [v && v.Alphabetic, v && v.Ideographic, v && v.Phonetic];
    var g = groups.map(function (x) { return String(x || '').split('=')[0]; }).filter(function (x) { return x.replace(/[\^\s]/g, ''); })[0];
    if (!g) return '';
    var c = g.split('^').map(function (x) { return x.trim(); });
    var family = (c[0] || '').toUpperCase();
    var given = [c[1], c[2]].filter(Boolean).join(' ');
    if (family && given) return family + ', ' + given;
    return family || given || c.filter(Boolean).join(' ');
  }

  function val(obj, tag) {
    var a = obj && obj[tag];
    if (!a || !a.Value || !a.Value.length) return undefined;
    var v = a.Value[0];
    if (a.vr === 'PN') return personName(v);
    return v;
  }

  function num(obj, tag) {
    var v = val(obj, tag);
    var n = parseFloat(v);
    return isNaN(n) ? undefined : n;
  }

  function fmtDate(d) { return d && d.length === 8 ? d.slice(0, 4) + '-' + d.slice(4, 6) + '-' + d.slice(6) : ''; }

  function qido(path, q) {
    return fetch(url(DW + path, q), { headers: { Accept: 'application/dicom+json' } }).then(function (r) {
      if (r.status === 204) return [];
      if (!r.ok) {
        return r.text().then(function (t) {
          var msg = t;
          try { msg = JSON.parse(t).error || t; } catch (e) { /* not JSON */ }
          throw new Error(msg || ('HTTP ' + r.status));
        });
      }
      return r.json();
    });
  }

  function fail(err) {
    body.appendChild(el('div', { class: 'error', role: 'alert' }, [
      el('h1', { text: 'The images cannot be shown' }), el('p', { text: String(err && err.message || err) })]));
  }

  // ---------------------------------------------------------------- study list
  function studyList() {
    var locked = params.has('PatientID');
    var fields = [['PatientName', 'Patient name'], ['PatientID', 'Patient ID'], ['StudyDate', 'Date (YYYYMMDD or range)'], ['ModalitiesInStudy', 'Modality'], ['AccessionNumber', 'Accession']];
    var inputs = {};
    var form = el('form', { class: 'search', role: 'search' }, fields.map(function (f) {
      inputs[f[0]] = el('input', { name: f[0], value: params.get(f[0]) || '' });
      if (locked && (f[0] === 'PatientID')) inputs[f[0]].readOnly = true;
      return el('label', { text: f[1] }, [inputs[f[0]]]);
    }).concat([el('button', { type: 'submit', text: 'Search' })]));
    var tbody = el('tbody');
    // patient is the cell naming a study's patient: the name, and under it the Patient
    // ID, birth date and sex (the columns after it stay where links and tests expect them).
    function patient(s) {
      var details = [], birth = fmtDate(val(s, '00100030')), sex = val(s, '00100040');
      details.push(document.createTextNode('ID '), el('span', { class: 'pid', text: val(s, '00100020') || '—' }));
      if (birth) details.push(document.createTextNode(' · born '), el('span', { class: 'birth', text: birth }));
      if (sex) details.push(document.createTextNode(' · '), el('span', { class: 'sex', title: 'Sex', text: sex }));
      return el('td', { class: 'patient' }, [el('span', { class: 'name', text: val(s, '00100010') || '—' }), el('span', { class: 'details' }, details)]);
    }
    var table = el('table', { class: 'studies' }, [el('thead', {}, [el('tr', {}, ['Date', 'Patient', 'Description', 'Modalities', 'Accession', 'Images'].map(function (h) { return el('th', { scope: 'col', text: h }); }))]), tbody]);
    body.appendChild(el('header', {}, [el('h1', { text: 'Studies' })]));
    body.appendChild(form);
    body.appendChild(table);
    function run(e) {
      if (e) e.preventDefault();
      var q = { limit: '100', includefield: '00081030,00080061,00201208,00100030,00100040' };
      Object.keys(inputs).forEach(function (k) { if (inputs[k].value) q[k] = inputs[k].value; });
      if (locked) q.IssuerOfPatientID = params.get('IssuerOfPatientID') || '';
      if (q.PatientName && q.PatientName.indexOf('*') < 0) q.PatientName += '*';
      tbody.textContent = '';
      qido('/studies', q).then(function (list) {
        if (!list.length) tbody.appendChild(el('tr', {}, [el('td', { colspan: '6', text: 'No studies.' })]));
        list.forEach(function (s) {
          var uid = val(s, '0020000D');
          var link = el('a', { href: url('/viewer/studies/' + uid), text: fmtDate(val(s, '00080020')) || '—' });
          tbody.appendChild(el('tr', {}, [el('td', {}, [link]), patient(s),
            el('td', { text: val(s, '00081030') || '' }), el('td', { text: ((s['00080061'] || {}).Value || []).join(', ') }),
            el('td', { text: val(s, '00080050') || '' }), el('td', { text: String(val(s, '00201208') || '') })]));
        });
      }).catch(fail);
    }
    form.addEventListener('submit', run);
    run();
  }

  // ---------------------------------------------------------------- study page
  var PRESETS = { CT: [['Soft tissue', 40, 400], ['Lung', -600, 1500], ['Bone', 300, 1500], ['Brain', 40, 80], ['Liver', 60, 160]] };
  var WAVEFORM = '1.2.840.10008.5.1.4.1.1.9.';
  var DOCUMENT = /^1\.2\.840\.10008\.5\.1\.4\.1\.1\.(88\.|104\.)/;

  function studyPage(studyUID) {
    var st = { study: studyUID, series: [], items: [], index: 0, window: null, zoom: 1, panX: 0, panY: 0, tool: 'wl', playing: null, fps: 0 };
    window.lumenViewer = st;
    var others = (params.get('studies') || '').split(',').filter(function (u) { return u; });

    var title = el('h1', { text: 'Study' });
    var sub = el('span', { class: 'sub' });
    var header = el('header', {}, [
      history.length > 1 ? el('button', { type: 'button', text: '← Back', onclick: function () { history.back(); } }) : null,
      title, sub]);
    if (others.length > 1) {
      var pick = el('select', { 'aria-label': 'Study', onchange: function () { location.href = url('/viewer/studies/' + pick.value, { studies: others.join(','), quality: DIAGNOSTIC ? 'diagnostic' : '' }); } },
        others.map(function (u, i) { var o = el('option', { value: u, text: 'Study ' + (i + 1) + ' of ' + others.length }); if (u === studyUID) o.selected = true; return o; }));
      header.appendChild(pick);
    }
    body.appendChild(header);
    if (params.get('keyImagesOnly') === 'true') body.appendChild(el('div', { class: 'notice', text: 'Key images only was asked for; this viewer shows every image of the study.' }));

    var seriesBar = el('nav', { class: 'series', 'aria-label': 'Series' });
    var img = el('img', { alt: '' });
    var overlay = el('div', { class: 'overlay', 'aria-live': 'polite' });
    var why = el('p');
    var message = el('div', { class: 'message', role: 'alert' }, [el('h2', { text: 'This image cannot be shown' }), why]);
    message.hidden = true;
    var vp = el('div', { class: 'viewport', tabindex: '0', role: 'img', 'aria-label': 'Image' }, [img, message, overlay]);
    var tools = el('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Tools' });
    var main = el('div', { class: 'main' }, [tools, vp]);
    body.appendChild(el('div', { class: 'study' }, [seriesBar, main]));

    // Toolbar.
    var toolButtons = {};
    [['wl', 'Window/level'], ['pan', 'Pan'], ['zoom', 'Zoom']].forEach(function (t) {
      toolButtons[t[0]] = el('button', { type: 'button', text: t[1], 'aria-pressed': String(t[0] === st.tool), onclick: function () { st.wlSuspended = false; setTool(t[0]); } });
      tools.appendChild(toolButtons[t[0]]);
    });
    var preset = el('select', { 'aria-label': 'Window preset', onchange: function () {
      var v = preset.value.split(',');
      st.window = v.length === 2 ? { c: +v[0], w: +v[1] } : null;
      show();
    } });
    tools.appendChild(preset);
    var resetBtn = el('button', { type: 'button', text: 'Reset', onclick: function () { st.zoom = 1; st.panX = st.panY = 0; st.window = st.storedWindow; preset.value = ''; show(); } });
    tools.appendChild(resetBtn);
    var playBtn = el('button', { type: 'button', text: '▶ Play', 'aria-pressed': 'false', onclick: function () { toggleCine(); } });
    tools.appendChild(playBtn);
    var prevBtn = el('button', { type: 'button', text: '◀', 'aria-label': 'Previous image', onclick: function () { step(-1); } });
    var nextBtn = el('button', { type: 'button', text: '▶', 'aria-label': 'Next image', onclick: function () { step(1); } });
    tools.appendChild(prevBtn);
    tools.appendChild(nextBtn);

    function setTool(t) {
      st.tool = t;
      Object.keys(toolButtons).forEach(function (k) { toolButtons[k].setAttribute('aria-pressed', String(k === t)); });
    }

    // toolsFor shows only the tools that apply to what the viewport shows: images get
    // them all; an ECG tracing pan, zoom and reset (no window/level, no cine); a document
    // (SR, PDF) none. The stack buttons stay for images, and for others when there are
    // several. Window/level, put aside for a tracing, comes back with the next image.
    function toolsFor(kind) {
      var image = kind === 'image', doc = kind === 'document';
      toolButtons.wl.hidden = preset.hidden = playBtn.hidden = !image;
      toolButtons.pan.hidden = toolButtons.zoom.hidden = resetBtn.hidden = doc;
      prevBtn.hidden = nextBtn.hidden = !image && st.items.length < 2;
      if (!image && st.tool === 'wl') { setTool('pan'); st.wlSuspended = true; }
      else if (image && st.wlSuspended) { st.wlSuspended = false; setTool('wl'); }
      tools.hidden = !Array.prototype.some.call(tools.children, function (c) { return !c.hidden; });
    }

    var frameEl = null; // the document frame, while a document is shown

    // The reason an image cannot be shown. An <img> that fails says nothing, so the
    // failed URL is asked again with fetch() to read the answer's reason (DICOMweb errors
    // are {"error": "..."}). Refusals (4xx) are kept per URL, so that a cine over broken
    // frames asks once per frame; a failure of the server (5xx, no answer) is asked again.
    var reasons = {}, nReasons = 0;
    function reasonFor(src) {
      if (reasons[src]) return Promise.resolve(reasons[src]);
      return fetch(src).then(function (r) {
        if (r.ok) {
          if (r.body) r.body.cancel();
          return 'The browser could not decode the picture it received.';
        }
        return r.text().then(function (t) {
          var m = '';
          try { m = JSON.parse(t).error || ''; } catch (e) { /* not JSON */ }
          m = String(m || ('The server answered ' + r.status + ' ' + r.statusText)).slice(0, 500);
          if (r.status < 500) {
            if (nReasons++ > 200) { reasons = {}; nReasons = 0; }
            reasons[src] = m;
          }
          return m;
        });
      }, function () { return 'The server could not be reached.'; });
    }

    function failure(reason) {
      message.hidden = reason === null;
      why.textContent = reason || '';
      vp.setAttribute('aria-label', reason === null ? 'Image' : 'This image cannot be shown: ' + reason);
      if (reason !== null) img.hidden = true;
    }

    img.addEventListener('load', function () {
      if (frameEl) return;
      img.hidden = false;
      failure(null);
    });
    img.addEventListener('error', function () {
      var src = img.getAttribute('src');
      if (!src || frameEl) return;
      img.hidden = true; // no broken-image icon
      reasonFor(src).then(function (m) {
        if (img.getAttribute('src') === src && !frameEl) failure(m);
      });
    });

    function instanceURL(it) {
      return DW + '/studies/' + st.study + '/series/' + it.series + '/instances/' + it.sop;
    }

    function imageURL(it) {
      if (it.kind === 'waveform') return url(instanceURL(it) + '/rendered', { accept: 'image/png' });
      var q = { accept: MEDIA };
      if (!DIAGNOSTIC) q.quality = '90';
      if (st.window) q.window = Math.round(st.window.c) + ',' + Math.max(1, Math.round(st.window.w)) + ',linear';
      return url(instanceURL(it) + '/frames/' + it.frame + '/rendered', q);
    }

    function show() {
      var it = st.items[st.index];
      vp.dataset.index = String(st.index);
      vp.dataset.count = String(st.items.length);
      if (!it) { overlay.textContent = 'No images in this series.'; img.removeAttribute('src'); failure(null); return; }
      toolsFor(it.kind);
      if (it.kind === 'document') {
        img.hidden = true;
        img.removeAttribute('src');
        failure(null);
        if (!frameEl) { frameEl = el('iframe', { title: 'Report' }); vp.appendChild(frameEl); }
        frameEl.src = url(instanceURL(it) + '/rendered');
        overlay.textContent = '';
        return;
      }
      if (frameEl) { frameEl.remove(); frameEl = null; }
      var src = imageURL(it);
      if (img.getAttribute('src') !== src) {
        failure(null);
        img.hidden = false;
        img.src = src;
      } else if (message.hidden) {
        img.hidden = false;
      }
      img.alt = (it.kind === 'waveform' ? 'ECG tracing' : 'Image ' + (st.index + 1) + ' of ' + st.items.length);
      img.style.transform = 'translate(' + st.panX + 'px,' + st.panY + 'px) scale(' + st.zoom + ')';
      var parts = [(st.index + 1) + ' / ' + st.items.length];
      if (it.frames > 1) parts.push('frame ' + it.frame + ' of ' + it.frames);
      if (st.window && it.kind === 'image') parts.push('W ' + Math.round(st.window.w) + ' L ' + Math.round(st.window.c));
      if (st.playing) parts.push(st.fps.toFixed(st.fps < 10 ? 1 : 0) + ' fps');
      overlay.textContent = parts.join(' · ');
    }

    function step(d) {
      if (!st.items.length) return;
      st.index = Math.min(st.items.length - 1, Math.max(0, st.index + d));
      show();
    }

    // Cine: the frames of the current multi-frame instance (else the whole stack), at the
    // recorded rate.
    function toggleCine() {
      if (st.playing) {
        clearInterval(st.playing);
        st.playing = null;
        playBtn.textContent = '▶ Play';
        playBtn.setAttribute('aria-pressed', 'false');
        vp.dataset.playing = 'false';
        show();
        return;
      }
      var cur = st.items[st.index];
      if (!cur || cur.kind !== 'image') return;
      var range = st.items.map(function (x, i) { return i; }).filter(function (i) { return cur.frames <= 1 || st.items[i].sop === cur.sop; });
      if (range.length < 2) return;
      st.fps = cur.fps || 10;
      range.forEach(function (i) { new Image().src = imageURL(st.items[i]); }); // preload
      var pos = Math.max(0, range.indexOf(st.index));
      st.played = 0;
      st.playing = setInterval(function () {
        pos = (pos + 1) % range.length;
        st.index = range[pos];
        st.played++;
        show();
      }, 1000 / st.fps);
      playBtn.textContent = '❚❚ Pause';
      playBtn.setAttribute('aria-pressed', 'true');
      vp.dataset.playing = 'true';
      vp.dataset.fps = String(st.fps);
    }

    // Pointer: window/level, pan or zoom by drag; wheel scrolls the stack (with Ctrl: zoom).
    var drag = null;
    vp.addEventListener('pointerdown', function (e) {
      drag = { x: e.clientX, y: e.clientY, win: st.window || st.guessWindow, zoom: st.zoom, panX: st.panX, panY: st.panY };
      vp.setPointerCapture(e.pointerId);
    });
    var pending = null;
    vp.addEventListener('pointermove', function (e) {
      if (!drag) return;
      var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      var tool = e.shiftKey ? 'pan' : st.tool;
      if (tool === 'pan') { st.panX = drag.panX + dx; st.panY = drag.panY + dy; show(); return; }
      if (tool === 'zoom') { st.zoom = Math.min(20, Math.max(0.1, drag.zoom * Math.exp(-dy / 200))); show(); return; }
      if (!drag.win) return;
      var k = Math.max(drag.win.w, 2) / 256;
      st.window = { c: drag.win.c + dy * k, w: Math.max(1, drag.win.w + dx * k) };
      if (!pending) pending = setTimeout(function () { pending = null; show(); }, 60);
    });
    vp.addEventListener('pointerup', function () { drag = null; });
    vp.addEventListener('pointercancel', function () { drag = null; });
    vp.addEventListener('wheel', function (e) {
      e.preventDefault();
      if (e.ctrlKey) { st.zoom = Math.min(20, Math.max(0.1, st.zoom * Math.exp(-e.deltaY / 300))); show(); return; }
      step(e.deltaY > 0 ? 1 : -1);
    }, { passive: false });
    vp.addEventListener('keydown', function (e) {
      var k = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 }[e.key];
      if (k) { e.preventDefault(); step(k); }
      else if (e.key === 'Home') { st.index = 0; show(); }
      else if (e.key === 'End') { st.index = st.items.length - 1; show(); }
      else if (e.key === ' ') { e.preventDefault(); toggleCine(); }
    });

    function loadSeries(se, button) {
      if (st.playing) toggleCine();
      Array.prototype.forEach.call(seriesBar.children, function (b) { b.setAttribute('aria-current', String(b === button)); });
      var inc = '00080016,00200013,00280008,00181063,00180040,00082144,00281050,00281051,00281052,00281053,00280101,00280103,00286010';
      return qido('/studies/' + st.study + '/series/' + se.uid + '/instances', { includefield: inc }).then(function (list) {
        list.sort(function (a, b) { return (num(a, '00200013') || 0) - (num(b, '00200013') || 0); });
        st.items = [];
        st.storedWindow = null;
        st.guessWindow = null;
        list.forEach(function (o) {
          var sop = val(o, '00080018'), cls = val(o, '00080016') || '';
          var frames = Math.max(1, num(o, '00280008') || 1);
          var ft = num(o, '00181063'), rate = num(o, '00180040') || num(o, '00082144');
          var fps = ft > 0 ? 1000 / ft : rate > 0 ? rate : 0;
          fps = Math.min(60, fps);
          var kind = cls.indexOf(WAVEFORM) === 0 ? 'waveform' : DOCUMENT.test(cls) ? 'document' : 'image';
          if (!st.storedWindow && num(o, '00281051')) st.storedWindow = { c: num(o, '00281050'), w: num(o, '00281051') };
          if (!st.guessWindow && kind === 'image') {
            var bits = num(o, '00280101') || 8, slope = num(o, '00281053') || 1, icpt = num(o, '00281052') || 0;
            var signed = num(o, '00280103') === 1;
            var full = Math.pow(2, bits);
            st.guessWindow = { c: (signed ? 0 : full / 2) * slope + icpt, w: full * slope };
          }
          var n = kind === 'image' ? frames : 1;
          for (var f = 1; f <= n; f++) st.items.push({ sop: sop, series: se.uid, frame: f, frames: n, fps: fps, kind: kind });
        });
        st.window = st.storedWindow;
        st.guessWindow = st.storedWindow || st.guessWindow;
        preset.textContent = '';
        preset.appendChild(el('option', { value: '', text: st.storedWindow ? 'Stored window' : 'Automatic window' }));
        (PRESETS[se.modality] || []).forEach(function (p) { preset.appendChild(el('option', { value: p[1] + ',' + p[2], text: p[0] + ' (' + p[1] + '/' + p[2] + ')' })); });
        // A multi-frame instance opens on its representative or middle frame.
        st.index = 0;
        if (st.items.length && st.items[0].frames > 1) {
          var rep = num(list[0], '00286010');
          st.index = rep ? rep - 1 : Math.floor(st.items[0].frames / 2);
        }
        st.zoom = 1; st.panX = st.panY = 0;
        playBtn.disabled = !st.items.some(function (x) { return x.frames > 1; }) && st.items.length < 2;
        vp.dataset.series = se.uid;
        vp.dataset.kind = st.items.length ? st.items[0].kind : '';
        show();
        vp.focus({ preventScroll: true });
      });
    }

    qido('/studies', { StudyInstanceUID: studyUID, includefield: '00081030' }).then(function (list) {
      var s = list[0];
      if (!s) throw new Error('The study is not in the archive.');
      title.textContent = val(s, '00081030') || 'Study';
      sub.textContent = [val(s, '00100010'), val(s, '00100020'), fmtDate(val(s, '00080020')), val(s, '00080050') ? 'Acc. ' + val(s, '00080050') : ''].filter(Boolean).join(' · ');
      return qido('/studies/' + studyUID + '/series', { includefield: '0008103E,00201209' });
    }).then(function (list) {
      list.sort(function (a, b) { return (num(a, '00200011') || 0) - (num(b, '00200011') || 0); });
      st.series = list.map(function (o) {
        return { uid: val(o, '0020000E'), modality: val(o, '00080060') || '', number: num(o, '00200011'), desc: val(o, '0008103E') || '', count: num(o, '00201209') || 0 };
      });
      var first = null;
      st.series.forEach(function (se) {
        var label = [se.modality, se.number !== undefined ? '#' + se.number : '', se.desc].filter(Boolean).join(' ');
        var b = el('button', { type: 'button', 'data-series': se.uid, onclick: function () { loadSeries(se, b); } }, [
          el('img', { src: url(DW + '/studies/' + studyUID + '/series/' + se.uid + '/thumbnail'), alt: 'Series ' + label, loading: 'lazy' }),
          el('span', { class: 'label', text: label + ' (' + se.count + ')' })]);
        seriesBar.appendChild(b);
        if (!first && ['SR', 'KO', 'PR', 'DOC'].indexOf(se.modality) < 0) first = [se, b];
      });
      if (!first && st.series.length) first = [st.series[0], seriesBar.children[0]];
      if (first) return loadSeries(first[0], first[1]);
    }).catch(fail);
  }

  var m = location.pathname.match(/^\/viewer\/studies\/([0-9.]+)\/?$/);
  if (m) studyPage(m[1]); else studyList();
})();
