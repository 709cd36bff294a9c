// Package viewer is Lumen's built-in web viewer, served from the binary (embed.FS; no npm
// build): a study list with search (QIDO-RS), a study page with series thumbnails, and
// an image view with stack scrolling, window/level by drag and presets, zoom and pan,
// cine playback at the recorded frame rate (FrameTime, CineRate,
// RecommendedDisplayFrameRate) and ECG tracings — all drawn from the DICOMweb rendered
// and thumbnail resources (PS3.18 §10.4), so the browser decodes nothing but JPEG and
// PNG. It works inside an EMR iframe and opens from IHE Invoke Image Display and from
// signed links (the token of the page's URL is passed on to every request).
//
// Headers sets the security headers of every page Lumen serves to people (the viewer,
// the EMR widget): a content security policy of Lumen's own resources only, and framing
// by Lumen and the configured EMR origins only (CSP frame-ancestors).
package viewer
