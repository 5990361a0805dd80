// Package mqtttest starts real inboxmq brokers (in-process or the real
// binary) and connects real MQTT clients (paho 3.1.1, paho.golang MQTT 5,
// mosquitto_pub) to them, for tests and the benchmark harness. It holds no
// fakes: every helper talks TCP to a listening broker.
package mqtttest
