"""The gRPC edge: the server and its composition, the servicer, conversions, and the call guards."""
