"""What crosses between a client and `paintstep serve`, and nothing that needs numpy.

The Krita plugin carries this package whole (install.py copies it into the plugin's vendor
folder, for Krita's Python, which has no numpy): the protocol's messages (`protocol`), the
client (`client`, with its socket and heartbeats in `client_link`, its shared memory in
`client_shared`, its events in `client_events`), shared-memory segments (`shared`), CURVE keys
(`keys`), where Paintstep keeps its files (`paths`) and the error every refusal raises
(`errors`). A module here imports only the standard library, pyzmq, msgpack and this package;
numpy only inside a function, where it is around.
"""
