package gcsjson

// AppendJSONString is exported for the fuzz test.
var AppendJSONString = appendJSONString
