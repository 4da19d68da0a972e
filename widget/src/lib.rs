//! Cornetta's widget (work in progress: the Leptos app lands with the widget work).
