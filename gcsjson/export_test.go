package gcsjson

// AppendJSONString is exported for the fuzz test.
var AppendJSONString = appendJSONString

// The wire forms and the fast decoders, for FuzzFastJSON.
type (
	ObjectJSON = objectJSON
	ListJSON   = listJSON
)

var (
	FastObject = fastObject
	FastList   = fastList
)
