//! The web view's pages, styles and scripts, embedded in the binary: no network and no build
//! step, at build time or when serving. Plain HTML, CSS and JavaScript (no framework): the
//! environment page draws one SVG and then only changes node classes and texts on updates.

/// The environments list.
pub const LIST_HTML: &str = include_str!("assets/list.html");
/// One environment.
pub const ENVIRONMENT_HTML: &str = include_str!("assets/environment.html");
/// The catalog.
pub const CATALOG_HTML: &str = include_str!("assets/catalog.html");

/// `/assets/FILE`: its content type and body.
pub fn asset(file: &str) -> Option<(&'static str, &'static str)> {
    const JS: &str = "text/javascript; charset=utf-8";
    Some(match file {
        "app.css" => ("text/css; charset=utf-8", include_str!("assets/app.css")),
        "common.js" => (JS, include_str!("assets/common.js")),
        "list.js" => (JS, include_str!("assets/list.js")),
        "environment.js" => (JS, include_str!("assets/environment.js")),
        "catalog.js" => (JS, include_str!("assets/catalog.js")),
        _ => return None,
    })
}
