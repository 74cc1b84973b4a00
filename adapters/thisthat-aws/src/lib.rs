//! thisthat on AWS (work in progress: see issue 4).
