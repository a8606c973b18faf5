-- Runs one RediSearch command (ARGV: the command and its arguments) on the node this script
-- was sent to. A search index covers only its own node's documents, and its commands name
-- the index as if it were a key, so a node that does not serve the name's slot would
-- redirect the command to another node; from a script it refuses instead ("Script attempted
-- to access a slot not served", verified), so an answer always comes from the node asked.
return redis.call(unpack(ARGV))
