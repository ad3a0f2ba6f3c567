//! Plain data the dashboard shows and the commands it sends: the contract between `app` and `ui`.
