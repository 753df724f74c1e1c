"""The warm stage server: pay the libraries' imports once, not once per stage.

Every DVC stage is its own ``python -m stages.<name>`` process, and each used to spend most of its time
importing PyTorch, MLflow, scikit-learn and matplotlib before any work. A per-user server imports them
once (after the CPU pins of ``core.determinism``, and nothing of the project) and forks a child for each
stage request; the child takes over the stage command's argv, working folder, environment and standard
streams, imports the project's code fresh and runs the stage, and its exit status becomes the
command's. DVC is unchanged: it runs the same commands and gets the same bytes.

    identity   where servers live (a folder only the user can open) and the key that picks one: the
               interpreter, the installed packages and the variables libraries read when they load
    wire       the messages on the socket: JSON frames, with the file descriptors 0, 1, 2 attached
    client     the hook ``stages/__init__.py`` calls: hand the stage to a server, or return and run cold
    preload    what the server imports before it serves (the libraries, nothing of the project)
    server     the server: one event loop that accepts, checks and forks, and exits after a quiet period
    session    one stage request: the child's set-up, the command's go, signals, the exit status
    child      what the forked child does to become the stage process
    control    ``digitflow server status|start|stop``

Part of ``core``: imports only the standard library and ``core`` (the server imports the heavy
libraries, but only when it starts, never at import time).
"""
