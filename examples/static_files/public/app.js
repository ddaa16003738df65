// app.js: marks the page once the script has loaded (served precompressed).
(function () {
  const status = document.getElementById('status');
  status.classList.add('loaded');
  status.textContent += ' The script loaded too.';
  document.body.dataset.loaded = 'yes';
})();

// padding line 00: static assets are often large and repetitive, so .br and .gz pay off
// padding line 01: static assets are often large and repetitive, so .br and .gz pay off
// padding line 02: static assets are often large and repetitive, so .br and .gz pay off
// padding line 03: static assets are often large and repetitive, so .br and .gz pay off
// padding line 04: static assets are often large and repetitive, so .br and .gz pay off
// padding line 05: static assets are often large and repetitive, so .br and .gz pay off
// padding line 06: static assets are often large and repetitive, so .br and .gz pay off
// padding line 07: static assets are often large and repetitive, so .br and .gz pay off
// padding line 08: static assets are often large and repetitive, so .br and .gz pay off
// padding line 09: static assets are often large and repetitive, so .br and .gz pay off
// padding line 10: static assets are often large and repetitive, so .br and .gz pay off
// padding line 11: static assets are often large and repetitive, so .br and .gz pay off
// padding line 12: static assets are often large and repetitive, so .br and .gz pay off
// padding line 13: static assets are often large and repetitive, so .br and .gz pay off
// padding line 14: static assets are often large and repetitive, so .br and .gz pay off
// padding line 15: static assets are often large and repetitive, so .br and .gz pay off
// padding line 16: static assets are often large and repetitive, so .br and .gz pay off
// padding line 17: static assets are often large and repetitive, so .br and .gz pay off
// padding line 18: static assets are often large and repetitive, so .br and .gz pay off
// padding line 19: static assets are often large and repetitive, so .br and .gz pay off
// padding line 20: static assets are often large and repetitive, so .br and .gz pay off
// padding line 21: static assets are often large and repetitive, so .br and .gz pay off
// padding line 22: static assets are often large and repetitive, so .br and .gz pay off
// padding line 23: static assets are often large and repetitive, so .br and .gz pay off
// padding line 24: static assets are often large and repetitive, so .br and .gz pay off
// padding line 25: static assets are often large and repetitive, so .br and .gz pay off
// padding line 26: static assets are often large and repetitive, so .br and .gz pay off
// padding line 27: static assets are often large and repetitive, so .br and .gz pay off
// padding line 28: static assets are often large and repetitive, so .br and .gz pay off
// padding line 29: static assets are often large and repetitive, so .br and .gz pay off
// padding line 30: static assets are often large and repetitive, so .br and .gz pay off
// padding line 31: static assets are often large and repetitive, so .br and .gz pay off
// padding line 32: static assets are often large and repetitive, so .br and .gz pay off
// padding line 33: static assets are often large and repetitive, so .br and .gz pay off
// padding line 34: static assets are often large and repetitive, so .br and .gz pay off
// padding line 35: static assets are often large and repetitive, so .br and .gz pay off
// padding line 36: static assets are often large and repetitive, so .br and .gz pay off
// padding line 37: static assets are often large and repetitive, so .br and .gz pay off
// padding line 38: static assets are often large and repetitive, so .br and .gz pay off
// padding line 39: static assets are often large and repetitive, so .br and .gz pay off
// padding line 40: static assets are often large and repetitive, so .br and .gz pay off
// padding line 41: static assets are often large and repetitive, so .br and .gz pay off
// padding line 42: static assets are often large and repetitive, so .br and .gz pay off
// padding line 43: static assets are often large and repetitive, so .br and .gz pay off
// padding line 44: static assets are often large and repetitive, so .br and .gz pay off
// padding line 45: static assets are often large and repetitive, so .br and .gz pay off
// padding line 46: static assets are often large and repetitive, so .br and .gz pay off
// padding line 47: static assets are often large and repetitive, so .br and .gz pay off
// padding line 48: static assets are often large and repetitive, so .br and .gz pay off
// padding line 49: static assets are often large and repetitive, so .br and .gz pay off
// padding line 50: static assets are often large and repetitive, so .br and .gz pay off
// padding line 51: static assets are often large and repetitive, so .br and .gz pay off
// padding line 52: static assets are often large and repetitive, so .br and .gz pay off
// padding line 53: static assets are often large and repetitive, so .br and .gz pay off
// padding line 54: static assets are often large and repetitive, so .br and .gz pay off
// padding line 55: static assets are often large and repetitive, so .br and .gz pay off
// padding line 56: static assets are often large and repetitive, so .br and .gz pay off
// padding line 57: static assets are often large and repetitive, so .br and .gz pay off
// padding line 58: static assets are often large and repetitive, so .br and .gz pay off
// padding line 59: static assets are often large and repetitive, so .br and .gz pay off
