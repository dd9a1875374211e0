"""The doors: the ways an event or a command comes in (HTTP, Kafka stream, batch file, control commands).
Each is thin and asks the process's runtime for its parts."""
