// Entry point of the dashboard page (kept apart so tests can import the
// modules without starting a connection).
import { main } from "./dashboard.js";

main();
