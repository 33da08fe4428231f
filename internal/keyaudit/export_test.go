package keyaudit

// Moved is moved, for the external tests.
var Moved = moved
